// Checks for PGV's "well known" string formats (StringRules.well_known and
// BytesRules.well_known). Each returns undefined when the value is acceptable
// and a short reason when it is not. Written from the RFCs that validate.proto
// names; none allocates on the success path except where noted.

/** RFC 1034 host name: dot-separated labels of letters, digits and hyphens. */
export function checkHostname(s: string): string | undefined {
  if (s.length === 0) return "hostname must not be empty";
  let host = s;
  if (host.endsWith(".")) host = host.slice(0, -1); // one trailing dot (FQDN) is allowed
  if (host.length > 253) return "hostname cannot exceed 253 characters";
  if (host.length === 0) return "hostname must not be empty";
  let labelStart = 0;
  for (let i = 0; i <= host.length; i++) {
    const c = i < host.length ? host.charCodeAt(i) : 0x2e;
    if (c === 0x2e /* . */) {
      const len = i - labelStart;
      if (len === 0) return "hostname labels must not be empty";
      if (len > 63) return "hostname labels cannot exceed 63 characters";
      if (host.charCodeAt(labelStart) === 0x2d || host.charCodeAt(i - 1) === 0x2d) {
        return "hostname labels cannot begin or end with a hyphen";
      }
      labelStart = i + 1;
      continue;
    }
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (!alnum && c !== 0x2d) return "hostname labels can only contain letters, digits and hyphens";
  }
  return undefined;
}

/** Dotted-quad IPv4, four decimal octets 0-255 without leading zeros. */
export function isIPv4(s: string): boolean {
  let parts = 0;
  let i = 0;
  while (i <= s.length) {
    const start = i;
    let v = 0;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 3 || v > 255) return false;
    if (len > 1 && s.charCodeAt(start) === 0x30) return false; // leading zero: ambiguous (octal?)
    parts++;
    if (i === s.length) break;
    if (s.charCodeAt(i) !== 0x2e || parts === 4) return false;
    i++;
  }
  return parts === 4;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/** RFC 4291 section 2.2 text form: 8 groups, "::" compression, optional trailing IPv4. No zone, no brackets. */
export function isIPv6(s: string): boolean {
  if (s.length < 2) return false;
  const dbl = s.indexOf("::");
  if (dbl !== -1 && s.indexOf("::", dbl + 1) !== -1) return false;
  const countGroups = (part: string, allowV4: boolean): number => {
    // returns number of 16-bit groups, or -1 when malformed
    if (part.length === 0) return 0;
    let groups = 0;
    let start = 0;
    for (;;) {
      let end = part.indexOf(":", start);
      if (end === -1) end = part.length;
      const g = part.slice(start, end);
      if (end === part.length && allowV4 && g.includes(".")) {
        if (!isIPv4(g)) return -1;
        return groups + 2;
      }
      if (g.length === 0 || g.length > 4) return -1;
      for (let i = 0; i < g.length; i++) if (!isHex(g.charCodeAt(i))) return -1;
      groups++;
      if (end === part.length) return groups;
      start = end + 1;
    }
  };
  if (dbl === -1) return countGroups(s, true) === 8;
  const head = s.slice(0, dbl);
  const tail = s.slice(dbl + 2);
  const h = countGroups(head, false);
  const t = countGroups(tail, true);
  return h >= 0 && t >= 0 && h + t <= 7;
}

export function isIP(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

/** RFC 4122 textual UUID: 8-4-4-4-12 hexadecimal digits. */
export function isUuid(s: string): boolean {
  if (s.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 0x2d) return false;
    } else if (!isHex(c)) {
      return false;
    }
  }
  return true;
}

const ATEXT = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$/;

/** RFC 5322 addr-spec (local-part "@" domain), with the domain checked as an RFC 1034 host name. */
export function checkEmail(s: string): string | undefined {
  let addr = s;
  // Accept the name-addr form `Display Name <local@domain>` like a mail parser would.
  const lt = addr.lastIndexOf("<");
  if (lt !== -1 && addr.endsWith(">")) addr = addr.slice(lt + 1, -1);
  if (addr.length > 254) return "email addresses cannot exceed 254 characters";
  const at = addr.lastIndexOf("@");
  if (at <= 0 || at === addr.length - 1) return "email address must have the form local@domain";
  const local = addr.slice(0, at);
  const domain = addr.slice(at + 1);
  if (local.length > 64) return "email address local part cannot exceed 64 characters";
  if (local.startsWith('"') && local.endsWith('"') && local.length >= 2) {
    // quoted-string: printable ASCII, with backslash escapes
    for (let i = 1; i < local.length - 1; i++) {
      const c = local.charCodeAt(i);
      if (c === 0x5c) { i++; continue; }
      if (c === 0x22 || c < 0x20 || c > 0x7e) return "email address has an invalid quoted local part";
    }
  } else {
    for (const atom of local.split(".")) {
      if (!ATEXT.test(atom)) return "email address has an invalid local part";
    }
  }
  const h = checkHostname(domain);
  return h === undefined ? undefined : `email address domain is invalid: ${h}`;
}

// RFC 3986 character classes.
function isUnreserved(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ||
    c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}
function isSubDelim(c: number): boolean {
  // ! $ & ' ( ) * + , ; =
  return c === 0x21 || c === 0x24 || c === 0x26 || c === 0x27 || c === 0x28 || c === 0x29 ||
    c === 0x2a || c === 0x2b || c === 0x2c || c === 0x3b || c === 0x3d;
}

/** Every char is unreserved / pct-encoded / sub-delim or one of `extra`. */
function allIn(s: string, extra: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isUnreserved(c) || isSubDelim(c) || extra.includes(s[i] ?? "")) continue;
    if (c === 0x25 && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))) { i += 2; continue; }
    return false;
  }
  return true;
}

function checkAuthority(a: string): string | undefined {
  let hostport = a;
  const at = a.lastIndexOf("@");
  if (at !== -1) {
    if (!allIn(a.slice(0, at), ":")) return "URI userinfo contains an invalid character";
    hostport = a.slice(at + 1);
  }
  let host = hostport;
  let port = "";
  if (hostport.startsWith("[")) {
    const close = hostport.indexOf("]");
    if (close === -1) return "URI IP literal is missing ']'";
    const lit = hostport.slice(1, close);
    const rest = hostport.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) return "URI has garbage after the IP literal";
    port = rest.slice(1);
    const future = /^v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$/.test(lit);
    if (!future && !isIPv6(lit)) return "URI IP literal is not a valid IPv6 address";
  } else {
    const colon = hostport.lastIndexOf(":");
    if (colon !== -1) {
      host = hostport.slice(0, colon);
      port = hostport.slice(colon + 1);
    }
    if (!allIn(host, "")) return "URI host contains an invalid character";
  }
  if (!/^[0-9]*$/.test(port)) return "URI port must be decimal digits";
  return undefined;
}

/**
 * RFC 3986 URI (absolute, with a scheme) or, when `allowRelative`, URI-reference.
 */
export function checkUri(s: string, allowRelative: boolean): string | undefined {
  let rest = s;
  const hash = rest.indexOf("#");
  if (hash !== -1) {
    if (!allIn(rest.slice(hash + 1), ":@/?")) return "URI fragment contains an invalid character";
    rest = rest.slice(0, hash);
  }
  const q = rest.indexOf("?");
  if (q !== -1) {
    if (!allIn(rest.slice(q + 1), ":@/?")) return "URI query contains an invalid character";
    rest = rest.slice(0, q);
  }
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(rest);
  if (schemeMatch) {
    rest = rest.slice(schemeMatch[0].length);
  } else {
    if (!allowRelative) return "URI must be absolute (have a scheme)";
    // relative-ref: a path-noscheme may not have ':' in its first segment
    const firstSeg = rest.startsWith("/") ? "" : rest.split("/", 1)[0] ?? "";
    if (firstSeg.includes(":")) return "relative URI reference cannot have ':' in its first path segment";
  }
  let path = rest;
  if (rest.startsWith("//")) {
    const end = rest.slice(2).search(/[/]/);
    const authority = end === -1 ? rest.slice(2) : rest.slice(2, 2 + end);
    path = end === -1 ? "" : rest.slice(2 + end);
    const a = checkAuthority(authority);
    if (a !== undefined) return a;
  }
  if (!allIn(path, ":@/")) return "URI path contains an invalid character";
  return undefined;
}

/**
 * HTTP header names per RFC 7230 `token` (tchar), with an optional leading ':' for
 * HTTP/2 pseudo-headers. Non-strict mode only forbids NUL, CR and LF.
 * (PGV's own expression spells part of tchar as the class range `+-.`, which also
 * admits ','; a comma is not a token character, so Signalbox rejects it.)
 */
const HEADER_NAME_STRICT = /^:?[0-9A-Za-z!#$%&'*+\-.^_`|~]+$/;
/** Header values per RFC 7230 field-value: no control characters except HTAB, no DEL. */
// eslint-disable-next-line no-control-regex
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
// eslint-disable-next-line no-control-regex
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;

export function isHeaderName(s: string, strict: boolean): boolean {
  return strict ? HEADER_NAME_STRICT.test(s) : HEADER_LOOSE.test(s);
}

export function isHeaderValue(s: string, strict: boolean): boolean {
  return strict ? HEADER_VALUE_STRICT.test(s) : HEADER_LOOSE.test(s);
}
