/* tsan_shim.c: linked into the ThreadSanitizer builds of the C programs only.
 *
 * The library is instrumented by rustc's LLVM, which calls __tsan_memcpy, __tsan_memmove and
 * __tsan_memset for its memory copies; GCC's libtsan (Debian 12, GCC 12) predates them. They
 * are the runtime's checked copies, so these forward to memcpy/memmove/memset, which libtsan
 * intercepts and checks the same way. Compiled with -fno-builtin so that the calls stay calls. */
#include <string.h>

void *__tsan_memcpy(void *dst, const void *src, size_t n);
void *__tsan_memmove(void *dst, const void *src, size_t n);
void *__tsan_memset(void *dst, int c, size_t n);

void *__tsan_memcpy(void *dst, const void *src, size_t n) { return memcpy(dst, src, n); }
void *__tsan_memmove(void *dst, const void *src, size_t n) { return memmove(dst, src, n); }
void *__tsan_memset(void *dst, int c, size_t n) { return memset(dst, c, n); }
