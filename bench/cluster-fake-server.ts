/** Child of bench/cluster-sync.ts: the fake API server with N Machines in its own process (so the bench's RSS is the appliance's). */
import { FakeKubeApi } from "../test/support/fake-kube-api.js";
import { benchMachine } from "./cluster-machines.js";

const count = Number(process.argv[2] ?? 10_000);
const api = new FakeKubeApi({ bookmarkMs: 1000 });
await api.start();
for (let i = 0; i < count; i++) api.put("machines", benchMachine(i));
process.stdout.write(`${api.url}\n`);
process.on("SIGTERM", () => void api.stop().then(() => process.exit(0)));
