/**
 * TFTP option names and their legal ranges (RFC 2347 option extension; RFC 2348 blksize;
 * RFC 2349 timeout and tsize; RFC 7440 windowsize). Kept apart from the codec so the wire
 * format stays option-agnostic: the codec carries every option, known or not.
 */
export const TftpOptionName = {
  blksize: "blksize",
  timeout: "timeout",
  tsize: "tsize",
  windowsize: "windowsize",
} as const;

export type KnownTftpOption = (typeof TftpOptionName)[keyof typeof TftpOptionName];

/** RFC 2348: blksize 8..65464 (65464 = 65535 max IPv4 UDP payload minus headers). */
export const BLKSIZE_MIN = 8;
export const BLKSIZE_MAX = 65464;
/** RFC 1350 block size, used when the client negotiates nothing. */
export const BLKSIZE_DEFAULT = 512;
/**
 * Default cap for negotiated blksize: Ethernet MTU 1500 − 20 (IPv4) − 8 (UDP) − 4 (TFTP header)
 * = 1468. Upstream caps at the receiving interface MTU − 28, but Node's dgram cannot tell which
 * interface a datagram came in on nor its MTU without a native call; 1468 never fragments on
 * standard Ethernet, and IP fragments are what PXE ROMs handle worst. Jumbo-frame sites can
 * raise it with `maxBlockSize`.
 */
export const BLKSIZE_CAP_DEFAULT = 1468;

/** RFC 2349: timeout 1..255 seconds. */
export const TIMEOUT_MIN_S = 1;
export const TIMEOUT_MAX_S = 255;

/** RFC 7440: windowsize 1..65535; we cap it (64 is where the lab bench stopped gaining). */
export const WINDOWSIZE_MIN = 1;
export const WINDOWSIZE_MAX = 65535;
export const WINDOWSIZE_CAP_DEFAULT = 64;

/** Transfer modes of RFC 1350 (compared case-insensitively on the wire). */
export const TFTP_MODES = ["netascii", "octet", "mail"] as const;
export type TftpMode = (typeof TFTP_MODES)[number];
