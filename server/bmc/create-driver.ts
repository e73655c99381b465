import type { MachineBackend } from "../inventory/backend.js";
import type { SecretReader } from "../inventory/secrets.js";
import { resolvePassword } from "../inventory/secrets.js";
import type { Machine } from "../inventory/types.js";
import { type BmcDriver, BmcError } from "./driver.js";
import { IpmiDriver, type IpmiDriverOptions } from "./ipmi/driver.js";
import { RedfishDriver, type RedfishDriverOptions } from "./redfish/driver.js";
import { MachinePinStore, type PinEvents, type PinLog } from "./tls-pin.js";

/**
 * The one place a concrete BMC driver is chosen for a Machine (flows, API and console get a
 * `BmcDriver` from here and never import a client): Redfish for `spec.pxe.redfish`, IPMI
 * (ipmitool lanplus) for `spec.pxe.ipmi`; the schema refuses a Machine with both.
 */
export interface BmcDriverDeps {
  backend: MachineBackend;
  secrets: SecretReader;
  /** The event bus (pin captured, pin mismatch). */
  events?: PinEvents;
  log?: PinLog;
  /** Timeouts and polling (tests shorten them). */
  tuning?: Omit<RedfishDriverOptions, "url" | "username" | "password" | "deviceID" | "pins" | "ca">;
  /** ipmitool timeouts and binary (tests shorten them). */
  ipmiTuning?: Pick<IpmiDriverOptions, "binary" | "tryTimeoutSeconds" | "retries" | "callTimeoutMs">;
}

/**
 * Annotation naming a ConfigMap with the BMC's CA bundle (`[namespace/]name`, key `ca.crt`; the
 * namespace defaults to the passwordRef's). With it, the BMC certificate is verified against the
 * bundle (chain and host name) and nothing is pinned.
 */
export const BMC_CA_ANNOTATION = "metalman.unbounded-cloud.io/bmc-ca-configmap";
export const BMC_CA_KEY = "ca.crt";

/** Undefined when the Machine has no BMC configured. Rejects with a BmcError (never a credential in it). */
export async function createBmcDriver(machine: Machine, deps: BmcDriverDeps): Promise<BmcDriver | undefined> {
  const redfish = machine.spec.pxe?.redfish;
  const ipmi = machine.spec.pxe?.ipmi;
  if (!redfish && !ipmi) return undefined;
  const name = machine.metadata.name;
  const refuse = () =>
    deps.backend.quarantine(name)
      ? new BmcError("quarantined", `machine ${name} is quarantined; no BMC action until an operator lifts it`)
      : undefined;
  const refusal = refuse();
  if (refusal) throw refusal;
  if (!redfish) {
    const ipmiSpec = ipmi!;
    const secret = await resolvePassword(deps.secrets, ipmiSpec.passwordRef);
    if (!secret.secretFound) {
      const ref = ipmiSpec.passwordRef;
      throw new BmcError("auth", `Secret ${ref.namespace}/${ref.name} (spec.pxe.ipmi.passwordRef) not found`);
    }
    return new IpmiDriver({
      ...deps.ipmiTuning,
      host: ipmiSpec.host,
      port: ipmiSpec.port ?? 623,
      username: ipmiSpec.username,
      password: secret.password,
      cipherSuite: ipmiSpec.cipherSuite,
      privilege: ipmiSpec.privilege ?? "ADMINISTRATOR",
      bootMode: ipmiSpec.bootMode,
      refuse,
    });
  }
  const ref = redfish.passwordRef;
  const secret = await resolvePassword(deps.secrets, ref);
  if (!secret.secretFound) {
    throw new BmcError("auth", `Secret ${ref.namespace}/${ref.name} (spec.pxe.redfish.passwordRef) not found`);
  }
  let ca: string | undefined;
  const annotation = machine.metadata.annotations?.[BMC_CA_ANNOTATION];
  if (annotation) {
    const [ns, cm] = annotation.includes("/") ? annotation.split("/", 2) : [ref.namespace, annotation];
    ca = await deps.secrets.configMapValue({ name: cm!, namespace: ns!, key: BMC_CA_KEY });
    if (!ca)
      throw new BmcError(
        "not-supported",
        `ConfigMap ${ns}/${cm} (annotation ${BMC_CA_ANNOTATION}) has no ${BMC_CA_KEY}`,
      );
  }
  return new RedfishDriver({
    ...deps.tuning,
    url: redfish.url,
    username: redfish.username,
    password: secret.password,
    deviceID: redfish.deviceID,
    pins: new MachinePinStore(deps.backend, name, deps.events, deps.log),
    ca,
    refuse,
  });
}
