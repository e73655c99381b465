/**
 * MachineOperation of `unbounded-cloud.io/v1alpha3` (spec §2.7, same schema and JSON names):
 * operator intent ("reboot node-01", "repave rack-a") kept apart from the operator's Machine
 * files. The Redfish and console rooms create, watch and update them through
 * `MachineBackend.operations`; standalone they live in `<stateDir>/operations/`.
 */
import type { Unchanged } from "./backend.js";
import type { Condition } from "./types.js";

export const OPERATION_KINDS = [
  "NodeReboot",
  "AgentUpgrade",
  "AgentReset",
  "HostReboot",
  "HostPowerOff",
  "HostPowerOn",
  "HostReplace",
] as const;
export type OperationKind = (typeof OPERATION_KINDS)[number];

export const OPERATION_PHASES = ["Pending", "InProgress", "Complete", "Failed"] as const;
export type OperationPhase = (typeof OPERATION_PHASES)[number];

export const TARGET_STAGES = [
  "",
  "PoweringOff",
  "WaitingOff",
  "PoweringOn",
  "WaitingOn",
  "RepaveRequested",
  "WaitingRepave",
  "WaitingCloudInit",
  "WaitingNode",
] as const;
export type TargetStage = (typeof TARGET_STAGES)[number];

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export interface MachineOperationSpec {
  /** Exactly one of machineRef and machineSelector. */
  machineRef?: string;
  machineSelector?: LabelSelector;
  operationKind: OperationKind;
  parameters?: Record<string, string>;
  ttlSecondsAfterFinished?: number;
}

export interface OperationTarget {
  machineRef: string;
  phase: OperationPhase;
  stage?: TargetStage;
  message?: string;
  startedAt?: string;
  completedAt?: string;
  observedGeneration?: number;
  attempts?: number;
  lastAttemptAt?: string;
  conditions?: Condition[];
}

export interface MachineOperationStatus {
  phase?: OperationPhase;
  message?: string;
  startedAt?: string;
  completedAt?: string;
  observedMachineGeneration?: number;
  conditions?: Condition[];
  targets?: OperationTarget[];
}

export interface MachineOperation {
  apiVersion: "unbounded-cloud.io/v1alpha3";
  kind: "MachineOperation";
  metadata: {
    name: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: MachineOperationSpec;
  status?: MachineOperationStatus;
}

export type MachineOperationList = MachineOperation[] & { readonly resourceVersion: string };

export type MachineOperationEvent =
  | { type: "ADDED" | "MODIFIED"; operation: MachineOperation }
  | { type: "DELETED"; operation: MachineOperation };

/**
 * The operations store. Same conventions as the Machine side of the backend: frozen objects,
 * resourceVersions from the backend's one sequence, watch with resume or GoneError, and
 * status writes with `mutate` re-run on conflict.
 */
export interface MachineOperationStore {
  get(name: string): MachineOperation | undefined;
  list(): MachineOperationList;
  watch(listener: (event: MachineOperationEvent) => void, options?: { resourceVersion?: string }): () => void;
  /**
   * Validates (spec §2.7 schema, plus our strict formats) and stores a new operation; the
   * backend sets uid, generation 1, creationTimestamp and resourceVersion, and drops any
   * status. Rejects with InvalidOperationError, or AlreadyExistsError for a taken name.
   */
  create(operation: MachineOperationInput): Promise<MachineOperation>;
  /** Like `MachineBackend.updateStatus`; the status is validated before it is written. */
  updateStatus(
    name: string,
    mutate: (operation: MachineOperation) => MachineOperationStatus | Unchanged,
  ): Promise<MachineOperation>;
  /** Resolves false when there was nothing to delete. */
  delete(name: string): Promise<boolean>;
}

export type MachineOperationInput = Omit<MachineOperation, "status" | "apiVersion" | "kind"> & {
  apiVersion?: string;
  kind?: string;
};

export class InvalidOperationError extends Error {
  readonly code = "INVALID";
  constructor(readonly errors: string[]) {
    super(`invalid MachineOperation: ${errors.join("; ")}`);
  }
}

export class AlreadyExistsError extends Error {
  readonly code = "ALREADY_EXISTS";
  constructor(name: string) {
    super(`machineoperation ${name} already exists`);
  }
}
