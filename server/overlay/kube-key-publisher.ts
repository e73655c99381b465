import { CoreV1Api, type KubeConfig, PatchStrategy, setHeaderOptions, type V1Node } from "@kubernetes/client-node";
import {
  NO_SCHEDULE_TAINT,
  type OverlayKeyPublisher,
  type OverlayMember,
  SITE_LABEL,
  WG_PUBKEY_ANNOTATION,
} from "./key-publisher.js";

/**
 * Publishes the key on a Node object that stands for the appliance: created when missing
 * (labelled with the site, tainted NoSchedule, InternalIP in its status), else merge-patched.
 * RBAC: `nodes` create, and get/patch on that one name (docs/overlay.md, deploy/rbac).
 */
export class KubeKeyPublisher implements OverlayKeyPublisher {
  readonly #core: CoreV1Api;

  constructor(kubeConfig: KubeConfig) {
    this.#core = kubeConfig.makeApiClient(CoreV1Api);
  }

  async publish(member: OverlayMember): Promise<void> {
    const metadata = {
      name: member.nodeName,
      labels: { [SITE_LABEL]: member.site, "unbounded-cloud.io/metalman-appliance": "true" },
      annotations: { [WG_PUBKEY_ANNOTATION]: member.publicKey },
    };
    let exists = true;
    try {
      await this.#core.readNode({ name: member.nodeName });
    } catch (err) {
      if ((err as { code?: number }).code !== 404) throw err;
      exists = false;
    }
    if (!exists) {
      const body: V1Node = {
        apiVersion: "v1",
        kind: "Node",
        metadata,
        spec: { taints: [{ ...NO_SCHEDULE_TAINT }] },
      };
      await this.#core.createNode({ body });
    } else {
      await this.#core.patchNode(
        { name: member.nodeName, body: { metadata } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
    }
    // The address lives in status (a subresource): the gateways route the member by it.
    await this.#core.patchNodeStatus(
      { name: member.nodeName, body: { status: { addresses: [{ type: "InternalIP", address: member.internalIP }] } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }
}
