import type { KubeApi } from "../cluster/kube-api.js";
import { statusOf } from "../cluster/kube-api.js";
import {
  APPLIANCE_LABEL,
  NO_SCHEDULE_TAINT,
  type OverlayKeyPublisher,
  type OverlayMember,
  SITE_LABEL,
  WG_PUBKEY_ANNOTATION,
} from "./key-publisher.js";

const MERGE_PATCH = "application/merge-patch+json";

/**
 * Publishes the key on a Node object that stands for the appliance: created when missing
 * (labelled with the site, tainted NoSchedule), else merge-patched; its InternalIP goes in
 * through the status subresource. RBAC: `nodes` create, and get/patch of that one name plus
 * `nodes/status` patch (docs/overlay.md).
 */
export class KubeKeyPublisher implements OverlayKeyPublisher {
  readonly #api: KubeApi;

  constructor(api: KubeApi) {
    this.#api = api;
  }

  async publish(member: OverlayMember): Promise<void> {
    const path = `/api/v1/nodes/${encodeURIComponent(member.nodeName)}`;
    const metadata = {
      name: member.nodeName,
      labels: { [SITE_LABEL]: member.site, [APPLIANCE_LABEL]: "true" },
      annotations: { [WG_PUBKEY_ANNOTATION]: member.publicKey },
    };
    let exists = true;
    try {
      await this.#api.request("GET", path);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      exists = false;
    }
    if (exists) {
      await this.#api.request("PATCH", path, { metadata }, MERGE_PATCH);
    } else {
      await this.#api.request("POST", "/api/v1/nodes", {
        apiVersion: "v1",
        kind: "Node",
        metadata,
        spec: { taints: [{ ...NO_SCHEDULE_TAINT }] },
      });
    }
    await this.#api.request(
      "PATCH",
      `${path}/status`,
      { status: { addresses: [{ type: "InternalIP", address: member.internalIP }] } },
      MERGE_PATCH,
    );
  }
}
