/**
 * Declared service dependencies: which services a service calls. A proxy of a
 * service with dependencies receives only those upstreams (plus what their
 * routes send to); a service with none declared receives every service.
 *
 * Names are plain names, not foreign keys to mesh.services, like the rule
 * tables: with Consul as the registry mesh.services stays empty, and a
 * dependency may be declared before the service it names is registered.
 */
import type { Migration } from "./index.ts";

const sql = String.raw`
CREATE TABLE mesh.service_dependencies (
  service    text NOT NULL
             CONSTRAINT service_dependencies_service_is_dns_label CHECK (mesh.is_dns_label(service)),
  depends_on text NOT NULL
             CONSTRAINT service_dependencies_depends_on_is_dns_label CHECK (mesh.is_dns_label(depends_on)),
  enabled    boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (service, depends_on)
);
CREATE INDEX service_dependencies_depends_on_idx ON mesh.service_dependencies (depends_on);

CREATE TRIGGER service_dependencies_touch_updated_at BEFORE UPDATE ON mesh.service_dependencies
  FOR EACH ROW EXECUTE FUNCTION mesh.touch_updated_at();
CREATE TRIGGER service_dependencies_note_change AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mesh.service_dependencies
  FOR EACH STATEMENT EXECUTE FUNCTION mesh.note_change();
`;

export const migration0002: Migration = { version: 2, name: "service_dependencies", sql };
