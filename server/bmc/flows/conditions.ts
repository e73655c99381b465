/**
 * Condition types the BMC flows write on a Machine. The first three keep upstream's types,
 * reasons and messages (spec §2.3, §8.6); the others are ours and are ignored by upstream tools.
 */
export const POWERED_OFF = "PoweredOff";
export const BOOT_ORDER_SUPPORTED = "BootOrderConfigSupported";
export const REPAVED = "Repaved";
/** Ours: the last power state read (True/On, False/Off, Unknown/<state>), refreshed periodically. */
export const POWERED_ON = "PoweredOn";
/** Ours: the last BMC call failed (False/<BmcError code>) or worked (True/Reachable). */
export const BMC_REACHABLE = "BmcReachable";
/** Ours: power cycles used by the current repave request: `repaveCounter=N attempt=K of M`. */
export const REPAVE_ATTEMPTS = "RepaveAttempts";
/**
 * Ours: the BMC refused a one-time (Once) override, so the repave set Pxe/Continuous and
 * the override must be put back (Disabled, else Hdd/Continuous) once the repave is over.
 */
export const BOOT_OVERRIDE_CONTINUOUS = "BootOverrideContinuous";
