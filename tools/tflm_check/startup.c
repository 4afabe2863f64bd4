// Startup for TFLite-Micro apps on QEMU mps2-an386 (Cortex-M4), linked with newlib's rdimon.specs
// (semihosting stdio) and mps2_an386.ld: the generated Makefile's STARTUP= and LDSCRIPT=.
// Reset: enable the FPU, copy .data, zero .bss, open the semihosting stdio handles (rdimon's
// crt0 would, but this vector table starts here), run the static constructors, then
// exit(main()), which flushes stdout and reports the status to QEMU.
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

int main(void);
void initialise_monitor_handles(void);  // newlib libgloss (rdimon)
void __libc_init_array(void);           // newlib: .preinit_array, _init, .init_array
int _write(int fd, const char *buf, int len);
__attribute__((noreturn)) void _exit(int status);
__attribute__((noreturn)) void Reset_Handler(void);
__attribute__((noreturn)) void Fault_Handler(void);

// Exit status of a program that took an unexpected exception.
#define STATUS_FAULT 70

void Reset_Handler(void) {
    // CPACR (0xE000ED88): CP10 and CP11 full access, then barriers before any FP instruction.
    *(volatile uint32_t *)0xE000ED88u |= (0xFu << 20);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    // Word loops through volatile pointers, so the compiler does not turn them into memcpy.
    volatile uint32_t *dst = &_sdata;
    const volatile uint32_t *src = &_sidata;
    while (dst < &_edata) {
        *dst++ = *src++;
    }
    for (dst = &_sbss; dst < &_ebss; dst++) {
        *dst = 0u;
    }
    initialise_monitor_handles();
    __libc_init_array();
    exit(main());
}

// Prints "unexpected exception N" on stderr (N from IPSR) and stops with STATUS_FAULT, without
// running atexit handlers.
void Fault_Handler(void) {
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    char msg[] = "unexpected exception 000\n";
    const uint32_t n = ipsr & 0x1FFu;
    msg[21] = (char)('0' + n / 100u);
    msg[22] = (char)('0' + n / 10u % 10u);
    msg[23] = (char)('0' + n % 10u);
    _write(2, msg, (int)(sizeof msg - 1u));
    _exit(STATUS_FAULT);
}

// Armv7-M system exceptions; no peripheral interrupt is enabled.
__attribute__((section(".vectors"), used)) void (*const vector_table[16])(void) = {
    (void (*)(void))(uintptr_t)&_estack,  // initial main stack pointer
    Reset_Handler,
    Fault_Handler,  // NMI
    Fault_Handler,  // HardFault
    Fault_Handler,  // MemManage
    Fault_Handler,  // BusFault
    Fault_Handler,  // UsageFault
    0,
    0,
    0,
    0,
    Fault_Handler,  // SVCall
    Fault_Handler,  // DebugMonitor
    0,
    Fault_Handler,  // PendSV
    Fault_Handler,  // SysTick (its interrupt stays disabled)
};
