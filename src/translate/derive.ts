import type { Message } from "@bufbuild/protobuf";

/**
 * Messages built as variations of another. A service's subset and color
 * clusters differ from its whole-service cluster only in name and EDS service
 * name; building each from scratch (and encoding it in full) is most of their
 * cost. A derived message is a shallow copy of its base with some fields
 * replaced, sharing every other field's value. That is safe because translated
 * messages are never mutated once built. The link to the base lets the encoder
 * reuse the base's bytes for the fields they share (xds/compose-binary.ts).
 */
const bases = new WeakMap<Message, Message>();

export function derive<T extends Message>(base: T, overrides: Partial<Omit<T, "$typeName" | "$unknown">>): T {
  const message = { ...base, ...overrides } as T;
  bases.set(message, base);
  return message;
}

/** The message `message` was derived from, if any. */
export function baseOf(message: Message): Message | undefined {
  return bases.get(message);
}
