import { DOCKER_HUB } from "./reference.js";

/**
 * Credentials from a docker-style `config.json` (`{"auths": {"host": {"auth": base64(user:pass)}}}`,
 * also `username`/`password` and `identitytoken`), the format of `docker login`, `skopeo login`
 * and of `kubernetes.io/dockerconfigjson` Secrets (`.dockerconfigjson`). Credential helpers
 * (`credsStore`) are not run: an appliance does not execute programs named by a config file.
 */
export interface RegistryCredentials {
  username: string;
  password: string;
  /** OAuth2 refresh token (`identitytoken`): sent as a refresh_token grant. Not used by Basic. */
  identityToken?: string;
}

export type DockerConfig = ReadonlyMap<string, RegistryCredentials>;

/** Parse the text of a config.json; throws with a message that never includes a secret value. */
export function parseDockerConfig(text: string, what: string): DockerConfig {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`${what}: not JSON`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error(`${what}: not a JSON object`);
  const auths = (doc as { auths?: unknown }).auths;
  const result = new Map<string, RegistryCredentials>();
  if (auths === undefined) return result;
  if (typeof auths !== "object" || auths === null || Array.isArray(auths)) {
    throw new Error(`${what}: "auths" must be an object`);
  }
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (typeof entry !== "object" || entry === null) throw new Error(`${what}: auths.${key} must be an object`);
    const e = entry as Record<string, unknown>;
    let username = typeof e.username === "string" ? e.username : "";
    let password = typeof e.password === "string" ? e.password : "";
    if (typeof e.auth === "string" && e.auth !== "") {
      const decoded = Buffer.from(e.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon === -1) throw new Error(`${what}: auths.${key}.auth is not base64 of user:password`);
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
    const identityToken = typeof e.identitytoken === "string" && e.identitytoken !== "" ? e.identitytoken : undefined;
    if (username === "" && password === "" && identityToken === undefined) continue;
    result.set(normaliseAuthKey(key), { username, password, ...(identityToken ? { identityToken } : {}) });
  }
  return result;
}

/**
 * The host a config.json key names: keys are written as `host`, `host:port`,
 * `https://host/v1/` (Docker Hub's historic key) or `http://host`.
 */
function normaliseAuthKey(key: string): string {
  let host = key.trim().replace(/^[a-z]+:\/\//i, "");
  host = host.split("/", 1)[0] ?? host;
  host = host.toLowerCase();
  if (host === "index.docker.io" || host === "registry-1.docker.io") return DOCKER_HUB;
  return host;
}

/** Credentials for `registry` (as in the reference: `docker.io` for Docker Hub). */
export function credentialsFor(config: DockerConfig | undefined, registry: string): RegistryCredentials | undefined {
  return config?.get(registry.toLowerCase());
}
