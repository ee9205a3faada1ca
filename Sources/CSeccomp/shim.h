/* libseccomp (Debian: libseccomp-dev), which compiles the monitor's per-thread filters to
 * classic BPF. Its action constants that are function-like macros, as functions. */
#ifndef CSECCOMP_SHIM_H
#define CSECCOMP_SHIM_H

#include <seccomp.h>
#include <stdint.h>

static inline uint32_t cseccomp_action_allow(void) { return SCMP_ACT_ALLOW; }
static inline uint32_t cseccomp_action_kill_process(void) { return SCMP_ACT_KILL_PROCESS; }
static inline uint32_t cseccomp_action_log(void) { return SCMP_ACT_LOG; }
static inline uint32_t cseccomp_action_trap(void) { return SCMP_ACT_TRAP; }
static inline uint32_t cseccomp_action_errno(uint16_t code) { return SCMP_ACT_ERRNO(code); }

#endif
