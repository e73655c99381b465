/** Everything a view needs, made once in main.ts and handed down by Svelte context. */
import { getContext } from "svelte";
import type { ApiClient } from "./api/client";
import type { MachineDetailManager } from "./state/detail.svelte";
import type { Lists } from "./state/lists.svelte";
import type { LiveManager } from "./state/live.svelte";
import type { MachinesManager } from "./state/machines.svelte";
import type { Router } from "./state/router.svelte";
import type { SessionManager } from "./state/session.svelte";
import type { ThemeManager } from "./state/theme.svelte";

export interface Console {
  api: ApiClient;
  session: SessionManager;
  live: LiveManager;
  machines: MachinesManager;
  detail: MachineDetailManager;
  lists: Lists;
  router: Router;
  theme: ThemeManager;
}

export const CONSOLE_KEY = Symbol("metalman-console");

/** The context map handed to `mount` (main.ts). */
export function consoleContext(value: Console): Map<symbol, Console> {
  return new Map([[CONSOLE_KEY, value]]);
}

export function useConsole(): Console {
  return getContext<Console>(CONSOLE_KEY);
}
