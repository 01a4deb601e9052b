/* VM object: creation, run state transitions, events. */
#include "vm.h"
#include "loader.h"
#include "serial.h"
#include "util.h"
#include "vmcore.h"

#include <fcntl.h>
#include <unistd.h>

static const char *const run_state_names[] = {
    [RUN_STATE_PRELAUNCH] = "prelaunch",
    [RUN_STATE_RUNNING] = "running",
    [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_SAVE_VM] = "save-vm",
    [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_INTERNAL_ERROR] = "internal-error",
};

const char *run_state_name(RunState s)
{
    return run_state_names[s];
}

static const AccelOps *choose_accel(const char *name, GError **errp)
{
    if (!name) {
        if (access("/dev/kvm", R_OK | W_OK) == 0) {
            return &accel_kvm_ops;
        }
        g_warning("/dev/kvm is not available: falling back to -accel none "
                  "(vCPUs have state but do not execute)");
        return &accel_none_ops;
    }
    if (g_str_equal(name, "kvm")) {
        return &accel_kvm_ops;
    }
    if (g_str_equal(name, "none")) {
        return &accel_none_ops;
    }
    error_setg(errp, "invalid accelerator %s", name);
    return NULL;
}

static bool add_vmcore_blocks(VM *vm, const VmcoreImage *img, GError **errp)
{
    for (guint i = 0; i < vmcore_block_count(img); i++) {
        VmcoreBlock b = vmcore_block(img, i);
        g_autofree char *name = g_strdup_printf("vmcore.%u", i);
        if (!guest_memory_add(vm->mem, name, b.gpa, b.size, errp)) {
            return false;
        }
    }
    return true;
}

/* Registers, memory and the guest note from the vmcore; the guest starts paused. */
static bool restore_vmcore(VM *vm, VmcoreImage *img, GError **errp)
{
    for (guint i = 0; i < vm->ncpus; i++) {
        vm->cpus[i]->state = *vmcore_cpu(img, i);
        vm->cpus[i]->state_dirty = true;
    }
    if (!vmcore_read_memory(img, vm->mem, errp)) {
        return false;
    }
    GBytes *note = vmcore_guest_note(img);
    vm->guest_note = note ? g_bytes_ref(note) : NULL;
    vm->restore_excluded = vmcore_excluded_pages(img, &vm->restore_dump_level);
    return true;
}

VM *vm_new(const VMConfig *cfg, GError **errp)
{
    VM *vm = g_new0(VM, 1);
    VmcoreImage *img = NULL;

    vm->name = g_strdup(cfg->name);
    g_mutex_init(&vm->cpu_lock);
    g_cond_init(&vm->cpu_cond);
    g_mutex_init(&vm->event_lock);
    vm->main_context = g_main_context_ref(g_main_context_default());
    vm->state = RUN_STATE_PRELAUNCH;
    vm->ncpus = cfg->smp ? cfg->smp : 1;
    /* a restored guest runs on "none" unless told otherwise */
    vm->accel = choose_accel(cfg->accel ? cfg->accel : cfg->load_vmcore ? "none" : NULL, errp);
    if (!vm->accel) {
        goto fail;
    }
    vm->serial = serial_new(cfg->serial, errp);
    if (!vm->serial) {
        goto fail;
    }
    vm->mem = guest_memory_new(cfg->mem_path, errp);
    if (!vm->mem) {
        goto fail;
    }
    if (cfg->load_vmcore) {
        img = vmcore_open(cfg->load_vmcore, errp);
        if (!img || !add_vmcore_blocks(vm, img, errp)) {
            goto fail;
        }
        vm->ncpus = vmcore_cpu_count(img);
    } else if (!guest_memory_add_pc_ram(vm->mem, cfg->ram_size, errp)) {
        goto fail;
    }
    if (!vm->accel->init(vm, errp)) {
        goto fail;
    }
    vm->cpus = g_new0(VCPU *, vm->ncpus);
    for (guint i = 0; i < vm->ncpus; i++) {
        VCPU *cpu = g_new0(VCPU, 1);
        cpu->vm = vm;
        cpu->index = i;
        cpu->stop_requested = true;
        vm->cpus[i] = cpu;
        if (!vm->accel->init_vcpu(cpu, errp)) {
            goto fail;
        }
    }
    if (img ? !restore_vmcore(vm, img, errp) : !loader_boot_x86(vm, cfg->kernel, errp)) {
        goto fail;
    }
    if (img) {
        vm->state = RUN_STATE_PAUSED;
    }
    vmcore_close(img);
    return vm;

fail:
    vmcore_close(img);
    vm_free(vm);
    return NULL;
}

void vm_free(VM *vm)
{
    if (!vm) {
        return;
    }
    if (vm->accel && vm->accel_state) {
        vm->accel->destroy(vm);
    }
    for (guint i = 0; vm->cpus && i < vm->ncpus; i++) {
        g_free(vm->cpus[i]);
    }
    g_free(vm->cpus);
    guest_memory_free(vm->mem);
    serial_free(vm->serial);
    if (vm->guest_note) {
        g_bytes_unref(vm->guest_note);
    }
    g_main_context_unref(vm->main_context);
    g_mutex_clear(&vm->cpu_lock);
    g_cond_clear(&vm->cpu_cond);
    g_mutex_clear(&vm->event_lock);
    g_free(vm->name);
    g_free(vm);
}

bool vm_start(VM *vm, bool start_paused, GError **errp)
{
    if (!vm->accel->start(vm, errp)) {
        return false;
    }
    if (!start_paused) {
        vm->accel->resume(vm);
        vm->state = RUN_STATE_RUNNING;
        vm->resumes++;
    }
    return true;
}

void vm_set_event_handler(VM *vm, VMEventFn fn, void *opaque)
{
    g_mutex_lock(&vm->event_lock);
    vm->event_fn = fn;
    vm->event_opaque = opaque;
    g_mutex_unlock(&vm->event_lock);
}

typedef struct PendingEvent {
    VM *vm;
    char *name;
    JsonObject *data;
    gint64 timestamp;
} PendingEvent;

static gboolean deliver_event(gpointer opaque)
{
    PendingEvent *ev = opaque;

    g_mutex_lock(&ev->vm->event_lock);
    VMEventFn fn = ev->vm->event_fn;
    void *fn_opaque = ev->vm->event_opaque;
    g_mutex_unlock(&ev->vm->event_lock);
    if (fn) {
        fn(fn_opaque, ev->name, ev->data, ev->timestamp);
    }
    if (ev->data) {
        json_object_unref(ev->data);
    }
    g_free(ev->name);
    g_free(ev);
    return G_SOURCE_REMOVE;
}

void vm_emit_event(VM *vm, const char *event, JsonObject *data)
{
    PendingEvent *ev = g_new0(PendingEvent, 1);

    ev->vm = vm;
    ev->name = g_strdup(event);
    ev->data = data;
    ev->timestamp = g_get_real_time();
    main_context_call(vm->main_context, deliver_event, ev);
}

bool vm_is_running(const VM *vm)
{
    return vm->state == RUN_STATE_RUNNING;
}

bool vm_stop(VM *vm, RunState new_state, GError **errp)
{
    if (vm->state != RUN_STATE_RUNNING) {
        return true;    /* as QEMU: no event, and prelaunch stays prelaunch */
    }
    vm->accel->pause(vm);
    vm->state = new_state;
    vm_emit_event(vm, "STOP", NULL);
    return true;
}

static bool run_state_needs_reset(RunState s)
{
    return s == RUN_STATE_SHUTDOWN || s == RUN_STATE_INTERNAL_ERROR;
}

bool vm_cont(VM *vm, GError **errp)
{
    if (run_state_needs_reset(vm->state)) {
        error_setg(errp, "Resetting the Virtual Machine is required");
        return false;
    }
    if (vm->state == RUN_STATE_RUNNING) {
        return true;
    }
    vm->accel->resume(vm);
    vm->state = RUN_STATE_RUNNING;
    vm->resumes++;
    vm_emit_event(vm, "RESUME", NULL);
    return true;
}

void vm_shutdown(VM *vm, bool guest, const char *reason)
{
    if (vm->state == RUN_STATE_SHUTDOWN) {
        return;
    }
    JsonObject *data = json_object_new();
    json_object_set_boolean_member(data, "guest", guest);
    json_object_set_string_member(data, "reason", reason);
    vm_emit_event(vm, "SHUTDOWN", data);
    if (vm->state == RUN_STATE_RUNNING) {
        vm->accel->pause(vm);
        vm_emit_event(vm, "STOP", NULL);
    }
    vm->state = RUN_STATE_SHUTDOWN;
}

void vm_internal_error(VM *vm)
{
    if (vm->state != RUN_STATE_RUNNING) {
        return;
    }
    vm->accel->pause(vm);
    vm->state = RUN_STATE_INTERNAL_ERROR;
    vm_emit_event(vm, "STOP", NULL);
}
