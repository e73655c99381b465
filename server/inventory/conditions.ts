import type { Condition, ConditionStatus } from "./types.js";

export interface ConditionUpdate {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  observedGeneration?: number;
}

/**
 * Kubernetes `meta.SetStatusCondition` semantics (spec §0), which the repave and cloud-init
 * timeouts depend on: an existing condition of the same type keeps its `lastTransitionTime`
 * unless `status` changes; `reason`, `message` and `observedGeneration` are overwritten.
 * A new condition gets `lastTransitionTime = now`. Returns a new array; the input is not mutated.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date = new Date(),
): Condition[] {
  const list = conditions ? conditions.map((c) => ({ ...c })) : [];
  const existing = list.find((c) => c.type === update.type);
  if (!existing) {
    const added: Condition = {
      type: update.type,
      status: update.status,
      reason: update.reason,
      message: update.message,
      lastTransitionTime: formatTime(now),
    };
    if (update.observedGeneration !== undefined) added.observedGeneration = update.observedGeneration;
    list.push(added);
    return list;
  }
  if (existing.status !== update.status) {
    existing.status = update.status;
    existing.lastTransitionTime = formatTime(now);
  }
  existing.reason = update.reason;
  existing.message = update.message;
  // Go assigns the field unconditionally; an omitted generation is the zero value there.
  if (update.observedGeneration !== undefined) existing.observedGeneration = update.observedGeneration;
  else delete existing.observedGeneration;
  return list;
}

/** Returns a new array without conditions of `type` (the input when there was none). */
export function removeCondition(conditions: readonly Condition[] | undefined, type: string): Condition[] {
  return (conditions ?? []).filter((c) => c.type !== type).map((c) => ({ ...c }));
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** metav1.Time serialises with second precision in RFC 3339 (`2026-04-27T10:00:00Z`). */
function formatTime(now: Date): string {
  return new Date(Math.floor(now.getTime() / 1000) * 1000).toISOString().replace(".000Z", "Z");
}
