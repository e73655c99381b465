import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { BootEventBus } from "../../../server/events/boot-events.js";
import { buildNetbootApp, type NetbootAppOptions } from "../../../server/http/app.js";
import { DirImageStore } from "../../../server/images/dir-image-store.js";
import { API_VERSION, type Machine } from "../../../server/inventory/types.js";
import { NetbootResolver, type NetbootResolverOptions } from "../../../server/netboot/resolver.js";
import { FakeBackend } from "./fake-backend.js";

export const silentLog = () => pino({ level: "silent" });

export interface TempImage {
  root: string;
  imageDir: string;
  diskDir: string;
  vmlinuz: Buffer;
  cleanup: () => void;
}

/**
 * A real image folder: `<root>/image/disk/` with a binary, a template, a static file, a
 * symlink inside the image, a symlink escaping it, and a secret beside the image.
 */
export function makeTempImage(): TempImage {
  const root = mkdtempSync(path.join(tmpdir(), "metalman-http-"));
  const imageDir = path.join(root, "image");
  const diskDir = path.join(imageDir, "disk");
  mkdirSync(path.join(diskDir, "grub"), { recursive: true });
  mkdirSync(path.join(diskDir, "cloud-init"), { recursive: true });
  mkdirSync(path.join(diskDir, "sub"), { recursive: true });
  const vmlinuz = randomBytes(300_000);
  writeFileSync(path.join(diskDir, "vmlinuz"), vmlinuz);
  writeFileSync(path.join(diskDir, "empty.bin"), Buffer.alloc(0));
  writeFileSync(path.join(diskDir, "grub", "grub.cfg.tmpl"), "menuentry {{ .Machine.Name }}\n");
  writeFileSync(path.join(diskDir, "cloud-init", "network-config"), "version: 2\n");
  writeFileSync(path.join(diskDir, "metadata.yaml"), "dhcpBootImageName: shimx64.efi\n");
  writeFileSync(path.join(root, "secret.txt"), "top secret\n");
  symlinkSync("vmlinuz", path.join(diskDir, "alias"));
  // Absolute symlinks are refused even when they point inside (docs/security.md).
  symlinkSync(path.join(diskDir, "vmlinuz"), path.join(diskDir, "abs-alias"));
  symlinkSync("grub/grub.cfg.tmpl", path.join(diskDir, "tmpl-alias"));
  symlinkSync("grub.cfg.tmpl", path.join(diskDir, "grub", "grub.cfg.link"));
  symlinkSync(root, path.join(diskDir, "escape"));
  symlinkSync(path.join(root, "secret.txt"), path.join(diskDir, "leak.txt"));
  return { root, imageDir, diskDir, vmlinuz, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

export function makeMachine(name: string, ip: string, image: string, extra: Partial<Machine["spec"]> = {}): Machine {
  return {
    apiVersion: API_VERSION,
    kind: "Machine",
    metadata: { name, generation: 3 },
    spec: {
      pxe: {
        image,
        dhcpLeases: [{ mac: "AA:BB:CC:DD:EE:01", ipv4: ip, subnetMask: "255.255.255.0", gateway: "10.0.0.1" }],
      },
      ...extra,
    },
  };
}

export const fakeRender: NetbootResolverOptions["render"] = (source, machine, name) =>
  `rendered ${name} for ${machine.metadata.name}: ${source.length} bytes\n`;

export interface Harness {
  app: ReturnType<typeof buildNetbootApp>;
  backend: FakeBackend;
  events: BootEventBus;
  registry: Registry;
  image: TempImage;
  close: () => Promise<void>;
}

export const LEASE_IP = "10.0.0.11";
export const OCI_IP = "10.0.0.12";

export async function harness(
  options: {
    render?: NetbootResolverOptions["render"];
    userData?: NetbootResolverOptions["userData"];
    app?: Partial<NetbootAppOptions>;
    machines?: (image: TempImage) => Machine[];
  } = {},
): Promise<Harness> {
  const image = makeTempImage();
  const machines = options.machines?.(image) ?? [
    makeMachine("node-01", LEASE_IP, "dir:image"),
    makeMachine("node-02", OCI_IP, "ghcr.io/azure/images/host-ubuntu2404:v1"),
  ];
  const backend = new FakeBackend(machines);
  const events = new BootEventBus();
  const registry = new Registry();
  const log = silentLog();
  const images = new DirImageStore({ baseDirOf: () => image.root, log, imageRoots: [image.root] });
  const resolver = new NetbootResolver({ images, render: options.render ?? fakeRender, userData: options.userData });
  const app = buildNetbootApp({ log, backend, resolver, events, metrics: registry, ...options.app });
  await app.ready();
  return {
    app,
    backend,
    events,
    registry,
    image,
    close: async () => {
      await app.close();
      image.cleanup();
    },
  };
}
