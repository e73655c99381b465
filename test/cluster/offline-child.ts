/**
 * Child process of the kill -9 test: starts a backend on the given kubeconfig and state folder
 * (the API server is down), makes one status write, prints "queued" once it resolved, and then
 * waits to be killed.
 */
import pino from "pino";
import { HttpKubeApi, loadKubeConfig } from "../../server/cluster/kube-api.js";
import { KubeMachineBackend } from "../../server/cluster/kube-backend.js";
import { setCondition } from "../../server/inventory/conditions.js";

const [kubeconfig, stateDir, reason] = process.argv.slice(2) as [string, string, string];
const backend = new KubeMachineBackend({
  api: new HttpKubeApi(await loadKubeConfig({ kubeconfig }), { timeoutMs: 1000 }),
  site: "",
  stateDir,
  log: pino({ level: "silent" }),
  backoffMs: 50,
});
await backend.start(3000);
const result = await backend.updateStatus("node-01", (m) => ({
  ...m.status,
  conditions: setCondition(m.status?.conditions, {
    type: "CloudInitDone",
    status: "True",
    reason,
    message: "from the killed process",
  }),
}));
process.stdout.write(`queued ${result.outcome} ${backend.upstream().queuedUpdates}\n`);
setInterval(() => undefined, 1000);
