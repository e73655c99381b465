import { generatePassword, hashPassword } from "../console/password-hash.js";
import { MAX_PASSWORD, MIN_PASSWORD, ROLES, type Role, UserStore, UserStoreError } from "../console/user-store.js";
import { type CliOut, parseCli } from "../util/cli-args.js";

const OPTIONS = {
  "password-stdin": { type: "boolean" },
  admin: { type: "boolean" },
  role: { type: "string" },
} as const;

export const USER_USAGE = `metalman user: the web console's local users (<state-dir>/console/users.json)

Usage:
  metalman user list                               names, roles, when their password was set
  metalman user add NAME [--admin | --role ROLE]   add a user (role viewer by default)
  metalman user passwd NAME                        set a new password (ends the user's sessions)
  metalman user role NAME ROLE                     change the role (viewer, operator, admin)
  metalman user delete NAME                        delete a user (never the last admin)
  metalman user hash                               a password hash for appliance.yaml's admin.passwordHash
                                                   (--password-stdin, or a generated password printed once)

Flags:
  --state-dir DIR      the serve-pxe --state-dir (default $HOME/.unbounded/metalman/state)
  --password-stdin     read the password from the first line of stdin; without it a password is
                       generated and printed once
  --admin              the same as --role admin

A running serve-pxe sees the change within a second; no restart needed.
`;

type Out = CliOut & { stdin?: () => Promise<string> };

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size > 4096) break;
  }
  return Buffer.concat(chunks).toString("utf8");
}

export async function runUserCli(argv: string[], env: NodeJS.ProcessEnv, out: Out): Promise<number> {
  const parsed = parseCli("user", USER_USAGE, OPTIONS, argv, env, out);
  if (typeof parsed === "number") return parsed;
  const { values, command, args, stateDir } = parsed;
  const store = new UserStore({ stateDir });
  const password = async (): Promise<{ value: string; generated: boolean }> => {
    if (!values["password-stdin"]) return { value: generatePassword(), generated: true };
    const text = await (out.stdin ?? readStdin)();
    return { value: text.split(/\r?\n/, 1)[0] ?? "", generated: false };
  };
  const need = (n: number, what: string) => {
    if (args.length !== n) throw new UserStoreError("INVALID", `${command} needs ${what}`);
  };
  try {
    if (command === "hash") {
      // Needs no users file: the hash goes into appliance.yaml on another box's config partition.
      need(0, "no argument");
      const pw = await password();
      if (pw.value.length < MIN_PASSWORD || pw.value.length > MAX_PASSWORD) {
        throw new UserStoreError("INVALID", `a password has ${MIN_PASSWORD} to ${MAX_PASSWORD} characters`);
      }
      if (pw.generated) out.stdout(`password: ${pw.value}\n(shown only now)\n`);
      out.stdout(`${await hashPassword(pw.value)}\n`);
      return 0;
    }
    await store.load();
    switch (command) {
      case "list": {
        const users = store.list();
        if (users.length === 0) {
          out.stdout(
            `no users in ${store.file} (serve-pxe makes an admin with a generated password at its next start)\n`,
          );
          return 0;
        }
        const width = Math.max(4, ...users.map((u) => u.name.length));
        out.stdout(`${"NAME".padEnd(width)}  ROLE      PASSWORD SET\n`);
        for (const u of users) out.stdout(`${u.name.padEnd(width)}  ${u.role.padEnd(8)}  ${u.passwordChangedAt}\n`);
        return 0;
      }
      case "add": {
        need(1, "NAME");
        const roleText = values.admin ? "admin" : (values.role ?? "viewer");
        if (!(ROLES as readonly string[]).includes(roleText)) {
          throw new UserStoreError("INVALID", `--role must be one of ${ROLES.join(", ")}, got ${roleText}`);
        }
        const pw = await password();
        const user = await store.add(args[0]!, roleText as Role, pw.value);
        out.stdout(`added ${user.role} ${user.name}\n`);
        if (pw.generated) out.stdout(`password: ${pw.value}\n(shown only now)\n`);
        return 0;
      }
      case "passwd": {
        need(1, "NAME");
        const pw = await password();
        const user = await store.setPassword(args[0]!, pw.value);
        out.stdout(`new password set for ${user.name}\n`);
        if (pw.generated) out.stdout(`password: ${pw.value}\n(shown only now)\n`);
        return 0;
      }
      case "role": {
        need(2, "NAME ROLE");
        if (!(ROLES as readonly string[]).includes(args[1]!)) {
          throw new UserStoreError("INVALID", `ROLE must be one of ${ROLES.join(", ")}, got ${args[1]}`);
        }
        const user = await store.setRole(args[0]!, args[1] as Role);
        out.stdout(`${user.name} is now ${user.role}\n`);
        return 0;
      }
      case "delete": {
        need(1, "NAME");
        const user = await store.remove(args[0]!);
        out.stdout(`deleted ${user.name}\n`);
        return 0;
      }
      default:
        out.stderr(`metalman user: unknown command "${command}"\n\n${USER_USAGE}`);
        return 2;
    }
  } catch (err) {
    out.stderr(`metalman user ${command}: ${(err as Error).message}\n`);
    return err instanceof UserStoreError && err.code !== "CORRUPT" ? 1 : 2;
  }
}
