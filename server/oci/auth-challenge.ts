/**
 * `WWW-Authenticate` challenges (RFC 7235): `Bearer realm="…",service="…",scope="…"` or
 * `Basic realm="…"`. Quoted strings may hold commas and backslash escapes; parameter names are
 * case-insensitive. Several challenges in one header are split at a new scheme token.
 */
export interface AuthChallenge {
  /** Lower-case: `bearer`, `basic`, … */
  scheme: string;
  params: Record<string, string>;
}

export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  const challenges: AuthChallenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[A-Za-z0-9!#$%&'*+.^_`|~-]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: AuthChallenge | undefined;
  while (i < n) {
    skipSpace();
    while (i < n && header[i] === ",") {
      i++;
      skipSpace();
    }
    if (i >= n) break;
    const name = token();
    if (name === "") {
      i++; // not a token character: skip it (malformed input is tolerated, never thrown on)
      continue;
    }
    skipSpace();
    if (header[i] === "=" && current !== undefined) {
      i++;
      skipSpace();
      let value = "";
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === "\\" && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++; // closing quote
      } else {
        // Unquoted: a token by the RFC; read leniently up to the next comma or space (URLs seen in the wild).
        const begin = i;
        while (i < n && header[i] !== "," && header[i] !== " " && header[i] !== "\t") i++;
        value = header.slice(begin, i);
      }
      current.params[name.toLowerCase()] = value;
      continue;
    }
    if (header[i] === "=" && current === undefined) {
      // A parameter before any scheme: malformed; skip the value.
      i++;
      token();
      continue;
    }
    // A new scheme (token68 credentials after it are ignored: registries send parameters).
    current = { scheme: name.toLowerCase(), params: {} };
    challenges.push(current);
  }
  return challenges;
}
