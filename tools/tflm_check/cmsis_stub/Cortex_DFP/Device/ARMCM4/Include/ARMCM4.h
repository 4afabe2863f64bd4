/* Stand-in for CMSIS's ARMCM4.h (CMSIS_6 and Cortex_DFP are not downloaded by this check).
 * TFLite-Micro's cortex_m_generic/micro_time.cc includes the device header for its cycle counter
 * and touches only DCB->DEMCR (TRCENA) and DWT->CTRL / DWT->CYCCNT; addresses and bit from the
 * ARMv7-M Architecture Reference Manual (DEMCR 0xE000EDFC, DWT_CTRL 0xE0001000). Nothing else of
 * CMSIS is provided. Used through TFLM_MAKE_ARGS="CMSIS_PATH=<this folder's parent>". */
#ifndef TFLM_CHECK_ARMCM4_STUB_H
#define TFLM_CHECK_ARMCM4_STUB_H

#include <stdint.h>

typedef struct {
    volatile uint32_t DHCSR;
    volatile uint32_t DCRSR;
    volatile uint32_t DCRDR;
    volatile uint32_t DEMCR;
} DCB_Type;

typedef struct {
    volatile uint32_t CTRL;
    volatile uint32_t CYCCNT;
} DWT_Type;

#define DCB ((DCB_Type *)0xE000EDF0UL)
#define DWT ((DWT_Type *)0xE0001000UL)
#define DCB_DEMCR_TRCENA_Msk (1UL << 24)

#endif /* TFLM_CHECK_ARMCM4_STUB_H */
