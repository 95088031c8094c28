/* Wine 8.0 (Debian 12) has no bcryptprimitives.dll, which Rust's standard library
 * imports on Windows for ProcessPrng (its random source since Rust 1.78); Windows 10
 * and later ship it. This stand-in, for the Wine test only, answers ProcessPrng with
 * RtlGenRandom (advapi32's SystemFunction036), which Wine has. Never shipped. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk; length -= chunk;
  }
  return TRUE;
}
