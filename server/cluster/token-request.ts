/**
 * Cluster-mode bootstrap tokens (spec §7.6): a TokenRequest for the `metalman-bootstrap`
 * ServiceAccount in `unbounded-kube`, plugged into `/attest` through the TokenSource interface.
 * The token is never logged: the source names the ServiceAccount only.
 */
import type { IssuedToken, TokenSource } from "../attest/token-source.js";
import type { Machine } from "../inventory/types.js";
import type { KubeApi } from "./kube-api.js";

export interface TokenRequestSourceOptions {
  api: KubeApi;
  namespace?: string;
  serviceAccount?: string;
  /** Default 3600 (upstream's one hour). */
  expirationSeconds?: number;
  audiences?: string[];
}

export class TokenRequestSource implements TokenSource {
  readonly #o: TokenRequestSourceOptions;

  constructor(options: TokenRequestSourceOptions) {
    this.#o = options;
  }

  async issue(_machine: Machine): Promise<IssuedToken> {
    const ns = this.#o.namespace ?? "unbounded-kube";
    const sa = this.#o.serviceAccount ?? "metalman-bootstrap";
    const answer = await this.#o.api.request<{ status?: { token?: string; expirationTimestamp?: string } }>(
      "POST",
      `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`,
      {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenRequest",
        spec: {
          expirationSeconds: this.#o.expirationSeconds ?? 3600,
          ...(this.#o.audiences ? { audiences: this.#o.audiences } : {}),
        },
      },
    );
    const token = answer.status?.token;
    if (!token) throw new Error(`TokenRequest for ${ns}/${sa} returned no token`);
    return {
      token,
      expiresAt: answer.status?.expirationTimestamp,
      source: `serviceaccount ${ns}/${sa} (TokenRequest)`,
    };
  }
}
