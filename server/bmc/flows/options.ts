/** Timings and bounds of the BMC flows. Defaults follow spec §8.8, §8.9, §9.1 and Appendix B. */
export interface BmcFlowOptions {
  /** Poll while a power action settles (spec: 1 s). */
  pollMs: number;
  /** Resend ForceOff / On when the BMC has not reached the state after this long (spec: 5 min). */
  powerTimeoutMs: number;
  /** Boot override rejected while the firmware is in POST (neither On nor Off): retry after (spec: 10 s). */
  postRetryMs: number;
  /** A repave (Repaved=False/Pending) not completed by `/pxe/disable` after this long is retried (spec: 30 min). */
  repaveTimeoutMs: number;
  /** Power cycles per repave request, the first included; upstream retries forever (spec §12 item 19). */
  repaveMaxAttempts: number;
  /** How often an idle Machine's power state is read into its `PoweredOn` condition. */
  powerRefreshMs: number;
  /** MachineOperation requeue while a target is in progress (spec §8.9: 5 s). */
  operationPollMs: number;
  /** External actions per operation target (spec §8.9: 3). */
  operationMaxAttempts: number;
  /** Targets of one operation in progress at once (spec §8.9: 1). */
  operationMaxConcurrentMachines: number;
  /** Cloud-init wait of HostReplace (spec §8.9: 5 min). */
  cloudInitTimeoutMs: number;
  /** Back-off after a failed BMC call: doubles from min to max. */
  errorBackoffMinMs: number;
  errorBackoffMaxMs: number;
  /** Reconciles running at once (different Machines); one BMC never sees two at once. */
  concurrency: number;
  /** `--site`: a machineSelector must pin it (spec §8.9); empty: the backend is already scoped. */
  site: string;
}

export const DEFAULT_FLOW_OPTIONS: BmcFlowOptions = {
  pollMs: 1000,
  powerTimeoutMs: 5 * 60_000,
  postRetryMs: 10_000,
  repaveTimeoutMs: 30 * 60_000,
  repaveMaxAttempts: 3,
  powerRefreshMs: 60_000,
  operationPollMs: 5000,
  operationMaxAttempts: 3,
  operationMaxConcurrentMachines: 1,
  cloudInitTimeoutMs: 5 * 60_000,
  errorBackoffMinMs: 1000,
  errorBackoffMaxMs: 5 * 60_000,
  concurrency: 16,
  site: "",
};

/** `30m0s`, as upstream's Go durations print in messages. */
export function goDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h > 0 ? `${h}h${m}m${sec}s` : m > 0 ? `${m}m${sec}s` : `${sec}s`;
}
