/**
 * RFC 1350 netascii (the Telnet NVT of RFC 764) for files we send: a local LF becomes CR LF and
 * a bare CR becomes CR NUL, so the receiver can undo both unambiguously. Only the read
 * direction exists because the server is read-only.
 */
export function toNetascii(input: Buffer): Buffer {
  let extra = 0;
  for (const byte of input) if (byte === 0x0a || byte === 0x0d) extra++;
  if (extra === 0) return input;
  const out = Buffer.allocUnsafe(input.length + extra);
  let o = 0;
  for (const byte of input) {
    if (byte === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    } else if (byte === 0x0d) {
      out[o++] = 0x0d;
      out[o++] = 0x00;
    } else {
      out[o++] = byte;
    }
  }
  return out;
}
