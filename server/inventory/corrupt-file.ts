import { link, unlink } from "node:fs/promises";

/**
 * Moves a state file that cannot be trusted out of the way without ever overwriting anything:
 * `<file>.corrupt`, or `<file>.corrupt.N` when that exists (link(2) fails on an existing name,
 * rename(2) would replace it). Resolves to the new path.
 */
export async function moveAside(file: string): Promise<string> {
  for (let n = 0; n < 1000; n++) {
    const target = n === 0 ? `${file}.corrupt` : `${file}.corrupt.${n}`;
    try {
      await link(file, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw err;
    }
    await unlink(file);
    return target;
  }
  throw new Error(`${file}: too many .corrupt copies beside it`);
}
