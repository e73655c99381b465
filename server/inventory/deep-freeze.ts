/**
 * Freezes a JSON-like value and everything reachable from it, so one stored object can be
 * handed to every reader without a defensive copy. Already-frozen objects are skipped
 * (they were frozen by this function, children included), which keeps re-freezing a
 * Machine that shares its spec with the previous version cheap.
 */
export function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== "object" || Object.isFrozen(value)) return value;
  // Typed arrays cannot be frozen while they have elements; Machines never hold them anyway.
  if (ArrayBuffer.isView(value)) return value;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  return value;
}
