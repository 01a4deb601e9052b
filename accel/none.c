/* The "none" accelerator: vCPUs hold register state but never execute. */
#include "vm.h"

#include <unistd.h>

static bool none_init(VM *vm, GError **errp)
{
    vm->accel_state = vm;
    return true;
}

static bool none_init_vcpu(VCPU *cpu, GError **errp)
{
    return true;
}

static bool none_start(VM *vm, GError **errp)
{
    for (guint i = 0; i < vm->ncpus; i++) {
        vm->cpus[i]->parked = true;
        vm->cpus[i]->thread_id = (int)getpid();
    }
    return true;
}

static void none_pause(VM *vm)
{
    for (guint i = 0; i < vm->ncpus; i++) {
        vm->cpus[i]->stop_requested = true;
    }
}

static void none_resume(VM *vm)
{
    for (guint i = 0; i < vm->ncpus; i++) {
        vm->cpus[i]->stop_requested = false;
        vm->cpus[i]->state_dirty = false;
    }
}

static void none_destroy(VM *vm)
{
    vm->accel_state = NULL;
}

const AccelOps accel_none_ops = {
    .name = "none",
    .init = none_init,
    .init_vcpu = none_init_vcpu,
    .start = none_start,
    .pause = none_pause,
    .resume = none_resume,
    .destroy = none_destroy,
};
