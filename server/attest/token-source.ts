import type { SecretReader } from "../inventory/secrets.js";
import type { Machine } from "../inventory/types.js";

/**
 * Where the bootstrap token sealed into an `/attest` answer comes from. Standalone: a kubeadm
 * bootstrap-token Secret (`KubeadmSecretTokenSource`). Cluster mode: a TokenRequest for the
 * `metalman-bootstrap` ServiceAccount (spec §7.6), implemented by the cluster sync against
 * this interface. The token is a secret: it never reaches logs, events or metrics (log
 * `tokenId()`, a hash prefix, as upstream does).
 */
export interface TokenSource {
  /** Rejects with TokenSourceError (reason for the event) or any error (500). */
  issue(machine: Machine): Promise<IssuedToken>;
}

export interface IssuedToken {
  token: string;
  /** ISO-8601 when known (TokenRequest status, the Secret's `expiration`). */
  expiresAt?: string;
  /** Where it came from, for events: `secret kube-system/bootstrap-token-abcdef`. */
  source: string;
}

export class TokenSourceError extends Error {
  readonly code = "TOKEN_SOURCE";
  constructor(
    readonly reason:
      | "no-token-configured"
      | "token-missing"
      | "token-malformed"
      | "token-expired"
      | "token-not-for-authentication",
    message: string,
  ) {
    super(message);
  }
}

export interface KubeadmSecretTokenSourceOptions {
  secrets: SecretReader;
  /** Secret used when a Machine names none in `spec.kubernetes.bootstrapTokenRef` (`--bootstrap-token-secret`). */
  defaultSecretName?: string;
  /** Default `kube-system`, where kubeadm keeps bootstrap tokens. */
  namespace?: string;
  now?: () => Date;
}

const TOKEN_ID = /^[a-z0-9]{6}$/;
const TOKEN_SECRET = /^[a-z0-9]{16}$/;
const SECRET_NAME = /^bootstrap-token-([a-z0-9]{6})$/;

/**
 * Standalone token source: the Secret named by the Machine's `spec.kubernetes.bootstrapTokenRef.name`
 * (else the configured default) in `kube-system`, in kubeadm's bootstrap-token shape:
 * name `bootstrap-token-<id>`, keys `token-id` (= `<id>`, 6 of [a-z0-9]) and `token-secret`
 * (16 of [a-z0-9]); the token is `<id>.<secret>`. Optional keys are honoured: `expiration`
 * (RFC 3339; an expired token is not handed out) and `usage-bootstrap-authentication` (must be
 * "true" when present: a token the API server would not accept for authentication is useless).
 */
export class KubeadmSecretTokenSource implements TokenSource {
  readonly #options: KubeadmSecretTokenSourceOptions;

  constructor(options: KubeadmSecretTokenSourceOptions) {
    this.#options = options;
  }

  async issue(machine: Machine): Promise<IssuedToken> {
    const name = machine.spec.kubernetes?.bootstrapTokenRef?.name || this.#options.defaultSecretName;
    if (!name) {
      throw new TokenSourceError(
        "no-token-configured",
        "no bootstrap token: set spec.kubernetes.bootstrapTokenRef.name or --bootstrap-token-secret",
      );
    }
    const namespace = this.#options.namespace ?? "kube-system";
    const source = `secret ${namespace}/${name}`;
    const idFromName = SECRET_NAME.exec(name)?.[1];
    if (idFromName === undefined) {
      throw new TokenSourceError("token-malformed", `${source}: the name must be bootstrap-token-<6 of [a-z0-9]>`);
    }
    const read = async (key: string) =>
      (await this.#options.secrets.secretValue({ name, namespace, key }))?.toString("utf8");
    const [id, secret, expiration, usage] = await Promise.all([
      read("token-id"),
      read("token-secret"),
      read("expiration"),
      read("usage-bootstrap-authentication"),
    ]);
    if (id === undefined || secret === undefined) {
      throw new TokenSourceError("token-missing", `${source}: not found, or without token-id and token-secret`);
    }
    if (!TOKEN_ID.test(id) || id !== idFromName || !TOKEN_SECRET.test(secret)) {
      throw new TokenSourceError(
        "token-malformed",
        `${source}: token-id must equal the name's <id> and token-secret be 16 of [a-z0-9]`,
      );
    }
    if (usage !== undefined && usage !== "true") {
      throw new TokenSourceError(
        "token-not-for-authentication",
        `${source}: usage-bootstrap-authentication is not "true"`,
      );
    }
    const issued: IssuedToken = { token: `${id}.${secret}`, source };
    if (expiration !== undefined) {
      const expires = Date.parse(expiration);
      if (Number.isNaN(expires)) throw new TokenSourceError("token-malformed", `${source}: expiration is not RFC 3339`);
      if (expires <= (this.#options.now ?? (() => new Date()))().getTime()) {
        throw new TokenSourceError("token-expired", `${source}: expired at ${expiration}`);
      }
      issued.expiresAt = new Date(expires).toISOString();
    }
    return issued;
  }
}
