/*
 * Stand-in for Windows' bcryptprimitives.dll, used only when running the
 * Windows test binaries under Wine (see ci/wine/runner.sh).
 *
 * Why: since Rust 1.78 the standard library gets its random bytes (e.g. the
 * HashMap seed) from ProcessPrng in bcryptprimitives.dll. Wine 8 (Debian 12)
 * ships no such DLL, so every Rust program fails to start with
 * STATUS_DLL_NOT_FOUND (c0000135). This DLL exports that one function and
 * forwards it to RtlGenRandom (SystemFunction036 in advapi32), which Wine has.
 * Newer Wine versions have ProcessPrng built in; this file is then unused.
 *
 * Built by runner.sh with mingw-w64 into the Wine prefix's system32; it is
 * never committed as a binary and never shipped.
 */
#include <windows.h>

/* RtlGenRandom; declared here because its header needs extra macros. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Documented contract: fills the buffer and always returns TRUE. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* RtlGenRandom takes a ULONG length: feed larger requests in chunks. */
    while (len > 0) {
        ULONG chunk = len > 0x10000000u ? 0x10000000u : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
