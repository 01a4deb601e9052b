/* The virtual machine: memory, vCPUs, run state, serial port, guest notes. */
#ifndef MINIVM_VM_H
#define MINIVM_VM_H

#include "cpu.h"
#include "memory.h"

#include <json-glib/json-glib.h>

typedef struct VM VM;
typedef struct VCPU VCPU;
typedef struct Serial Serial;

/* Run states, named as QEMU's query-status names them. */
typedef enum {
    RUN_STATE_PRELAUNCH,
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,
    RUN_STATE_SAVE_VM,
    RUN_STATE_SHUTDOWN,
    RUN_STATE_INTERNAL_ERROR,
} RunState;

const char *run_state_name(RunState s);

typedef struct AccelOps {
    const char *name;
    bool (*init)(VM *vm, GError **errp);
    bool (*init_vcpu)(VCPU *cpu, GError **errp);
    /* Start vCPU threads, parked. */
    bool (*start)(VM *vm, GError **errp);
    /* Kick every vCPU out of the guest; wait until all are parked with state synced. */
    void (*pause)(VM *vm);
    /* Write back dirty state; let every vCPU run. */
    void (*resume)(VM *vm);
    void (*destroy)(VM *vm);
} AccelOps;

extern const AccelOps accel_kvm_ops;
extern const AccelOps accel_none_ops;

struct VCPU {
    VM *vm;
    guint index;
    X86CPUState state;     /* valid while the VM is not running */
    bool state_dirty;      /* state changed by minivm; write back before running */
    /* run control, protected by vm->cpu_lock */
    bool stop_requested;
    bool parked;
    bool quit;
    uint64_t exits;
    int thread_id;         /* host thread id (info cpus, query-cpus-fast) */
    void *accel;           /* accelerator private */
};

/* `timestamp`: when the event happened (g_get_real_time), not when it is delivered. */
typedef void (*VMEventFn)(void *opaque, const char *event, JsonObject *data, gint64 timestamp);

struct VM {
    char *name;
    GuestMemory *mem;
    const AccelOps *accel;
    void *accel_state;
    guint ncpus;
    VCPU **cpus;
    RunState state;
    uint64_t resumes;       /* times the vCPUs were let run: guest memory changes only then */
    GMutex cpu_lock;
    GCond cpu_cond;
    Serial *serial;
    GBytes *guest_note;     /* the guest's ELF note (VMCOREINFO), or NULL */
    uint64_t restore_excluded;      /* -load-vmcore: pages its dump level left out (zeros) */
    uint32_t restore_dump_level;
    uint64_t unknown_port_accesses;
    GMutex event_lock;
    VMEventFn event_fn;
    void *event_opaque;
    GMainContext *main_context;
    bool shutdown_requested;
};

typedef struct VMConfig {
    const char *accel;      /* "kvm", "none" or NULL (kvm, falling back to none) */
    uint64_t ram_size;
    guint smp;
    bool start_paused;      /* -S */
    const char *kernel;
    const char *load_vmcore;
    const char *mem_path;
    const char *serial;
    const char *name;
} VMConfig;

VM *vm_new(const VMConfig *cfg, GError **errp);
void vm_free(VM *vm);

/* Start execution unless -S was given (then stays in prelaunch). */
bool vm_start(VM *vm, bool start_paused, GError **errp);

void vm_set_event_handler(VM *vm, VMEventFn fn, void *opaque);
/* Emit an event from any thread: stamped now, delivered from the main context.
 * Takes `data`. */
void vm_emit_event(VM *vm, const char *event, JsonObject *data);

bool vm_is_running(const VM *vm);
/* QMP stop/cont: errors with QEMU's texts where QEMU has them. */
bool vm_stop(VM *vm, RunState new_state, GError **errp);
bool vm_cont(VM *vm, GError **errp);
/* Guest or monitor requested shutdown (vCPUs stop, state shutdown, SHUTDOWN event). */
void vm_shutdown(VM *vm, bool guest, const char *reason);
/* A vCPU hit an error it cannot continue from: stop in internal-error. */
void vm_internal_error(VM *vm);

#endif
