import "./app.css";
import { mount } from "svelte";
import App from "./App.svelte";
import { ApiClient } from "./lib/api/client";
import { type Console, consoleContext } from "./lib/context";
import { MachineDetailManager } from "./lib/state/detail.svelte";
import { createLists } from "./lib/state/lists.svelte";
import { LiveManager } from "./lib/state/live.svelte";
import { MachinesManager } from "./lib/state/machines.svelte";
import { Router } from "./lib/state/router.svelte";
import { SessionManager } from "./lib/state/session.svelte";
import { ThemeManager } from "./lib/state/theme.svelte";

let session: SessionManager | undefined;
const api = new ApiClient({ onUnauthenticated: () => session?.expired() });
session = new SessionManager(api);
const live = new LiveManager(api);
const machines = new MachinesManager(api, live);
const app: Console = {
  api,
  session,
  live,
  machines,
  detail: new MachineDetailManager(api, live, machines),
  lists: createLists(api, live),
  router: new Router(),
  theme: new ThemeManager(),
};
// The bench and the browser tests read the managers through this handle.
(window as unknown as { metalmanConsole: Console }).metalmanConsole = app;
const target = document.getElementById("app");
if (target) mount(App, { target, context: consoleContext(app) });
