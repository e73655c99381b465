/**
 * Option 93 client system architecture types (RFC 4578 §2.1 and the IANA "Processor
 * Architecture Types" registry). Boot file selection keys off these codes.
 */
export const ClientArch = {
  X86Bios: 0x00,
  X86Uefi: 0x06,
  X64Uefi: 0x07,
  /** Registered as "EFI BC"; in practice x64 UEFI firmware sends it too. */
  EfiBc: 0x09,
  Arm32Uefi: 0x0a,
  Arm64Uefi: 0x0b,
  X86UefiHttp: 0x0f,
  X64UefiHttp: 0x10,
  EfiBcHttp: 0x11,
  Arm32UefiHttp: 0x12,
  Arm64UefiHttp: 0x13,
  X86BiosHttp: 0x14,
} as const;

export const CLIENT_ARCH_NAMES: ReadonlyMap<number, string> = new Map([
  [0x00, "x86-bios"],
  [0x01, "nec-pc98"],
  [0x02, "itanium"],
  [0x03, "dec-alpha"],
  [0x04, "arc-x86"],
  [0x05, "intel-lean-client"],
  [0x06, "x86-uefi"],
  [0x07, "x64-uefi"],
  [0x08, "efi-xscale"],
  [0x09, "efi-bc"],
  [0x0a, "arm32-uefi"],
  [0x0b, "arm64-uefi"],
  [0x0c, "powerpc-open-firmware"],
  [0x0d, "powerpc-epapr"],
  [0x0e, "power-opal-v3"],
  [0x0f, "x86-uefi-http"],
  [0x10, "x64-uefi-http"],
  [0x11, "efi-bc-http"],
  [0x12, "arm32-uefi-http"],
  [0x13, "arm64-uefi-http"],
  [0x14, "x86-bios-http"],
  [0x15, "arm32-uboot"],
  [0x16, "arm64-uboot"],
  [0x17, "arm32-uboot-http"],
  [0x18, "arm64-uboot-http"],
  [0x19, "riscv32-uefi"],
  [0x1a, "riscv32-uefi-http"],
  [0x1b, "riscv64-uefi"],
  [0x1c, "riscv64-uefi-http"],
  [0x1d, "riscv128-uefi"],
  [0x1e, "riscv128-uefi-http"],
  [0x1f, "s390-basic"],
  [0x20, "s390-extended"],
  [0x21, "mips32-uefi"],
  [0x22, "mips64-uefi"],
  [0x23, "sunway32-uefi"],
  [0x24, "sunway64-uefi"],
  [0x25, "loongarch32-uefi"],
  [0x26, "loongarch32-uefi-http"],
  [0x27, "loongarch64-uefi"],
  [0x28, "loongarch64-uefi-http"],
  [0x29, "arm-rpiboot"],
]);

export function clientArchName(arch: number | undefined): string | undefined {
  if (arch === undefined) return undefined;
  return CLIENT_ARCH_NAMES.get(arch) ?? `arch-0x${arch.toString(16).padStart(4, "0")}`;
}
