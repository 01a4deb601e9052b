/* A -kernel test guest that touches 100 ports minivm does not emulate, then idles. */
#include "demo_abi.h"

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

__attribute__((noreturn)) void guest_start(uint64_t cpu, const struct minivm_boot_info *info)
{
    volatile uint8_t sink = 0;

    for (int i = 0; i < 50; i++) {
        outb(0x80, (uint8_t)i);          /* POST code port: not emulated */
        sink ^= inb(0x61);               /* PC speaker: not emulated, reads 0xff */
    }
    for (const char *s = sink == 0 ? "unknown-ports ready\n" : "unknown-ports odd\n"; *s; s++) {
        outb(0x3f8, (uint8_t)*s);
    }
    for (;;) {
        outb(MINIVM_PORT_IDLE, 0);
    }
}
