import type { MachineOperation, MachineOperationStore } from "../inventory/machine-operation.js";
import type { Machine } from "../inventory/types.js";

/**
 * A HostReplace MachineOperation is a repave request too (spec §8.9): upstream's later revision
 * makes grub.cfg install while "an active HostReplace op whose BootImageWritten is not True"
 * exists. Here the netboot templates keep their counter test (the images of netboot-images and
 * upstream's own compare `spec.operations.repaveCounter` with `status.operations.repaveCounter`),
 * and the template data shows a pending HostReplace as one more requested repave. So every
 * existing template, ours or upstream's, installs for a HostReplace without a change, and
 * `/pxe/disable` completes it (server/http/pxe.ts). docs/bmc-ipmi.md ("HostReplace and grub.cfg").
 */

/** The oldest non-terminal HostReplace naming `machine` (machineRef or a snapshotted target) whose image is not written. */
export function pendingHostReplace(
  operations: readonly MachineOperation[],
  machine: string,
): MachineOperation | undefined {
  return operations
    .filter((op) => op.spec.operationKind === "HostReplace")
    .filter((op) => op.status?.phase !== "Complete" && op.status?.phase !== "Failed")
    .filter((op) => op.status?.conditions?.find((c) => c.type === "BootImageWritten")?.status !== "True")
    .filter((op) => {
      const targets = op.status?.targets;
      if (targets && targets.length > 0) {
        const target = targets.find((t) => t.machineRef === machine);
        return target !== undefined && target.phase !== "Complete" && target.phase !== "Failed";
      }
      return op.spec.machineRef === machine;
    })
    .sort((a, b) => (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? ""))[0];
}

/**
 * The Machine as templates see it: with a pending HostReplace, `spec.operations.repaveCounter`
 * is one above the completed counter (never below what the operator asked). Only the view is
 * changed; the stored Machine never is.
 */
export function templateView(machine: Machine, operations: Pick<MachineOperationStore, "list">): Machine {
  if (!pendingHostReplace(operations.list(), machine.metadata.name)) return machine;
  const requested = machine.spec.operations?.repaveCounter ?? 0;
  const completed = machine.status?.operations?.repaveCounter ?? 0;
  if (requested > completed) return machine; // already pending by the counters
  return {
    ...machine,
    spec: { ...machine.spec, operations: { ...machine.spec.operations, repaveCounter: completed + 1 } },
  };
}
