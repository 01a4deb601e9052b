/*
 * The KVM accelerator: one thread per vCPU running KVM_RUN.
 *
 * Pause protocol: under vm->cpu_lock the controller sets stop_requested, sets
 * kvm_run.immediate_exit and signals the vCPU thread (SIGUSR1, empty handler).
 * The vCPU thread clears immediate_exit only under the same lock while no stop
 * is requested, so a kick can never be lost. A stopping vCPU completes any
 * pending I/O, saves its registers into cpu->state and parks on vm->cpu_cond.
 */
#include "vm.h"
#include "serial.h"
#include "util.h"
#include "demo_abi.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define KVM_KICK_SIGNAL SIGUSR1
#define MSR_KERNEL_GS_BASE 0xc0000102
#define KVM_TSS_GPA 0xfffbd000ULL

typedef struct KvmState {
    int kvm_fd;
    int vm_fd;
    int run_size;
    struct kvm_cpuid2 *cpuid;
} KvmState;

typedef struct KvmVcpu {
    int fd;
    struct kvm_run *run;
    GThread *thread;
    pthread_t tid;
    bool tid_valid;
} KvmVcpu;

typedef enum { EXIT_CONTINUE, EXIT_SHUTDOWN, EXIT_GUEST_EXIT, EXIT_ERROR, EXIT_HALT } ExitAction;

static void kick_handler(int sig)
{
    (void)sig;
}

static struct kvm_cpuid2 *get_supported_cpuid(int kvm_fd, GError **errp)
{
    for (int n = 128; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(c->entries[0]));
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            return c;
        }
        int err = errno;
        g_free(c);
        if (err != E2BIG) {
            error_setg_errno(errp, err, "KVM_GET_SUPPORTED_CPUID failed");
            return NULL;
        }
    }
    error_setg(errp, "KVM_GET_SUPPORTED_CPUID: too many entries");
    return NULL;
}

static bool kvm_map_memory(KvmState *k, GuestMemory *mem, GError **errp)
{
    for (guint i = 0; i < guest_memory_count(mem); i++) {
        RamBlock *b = guest_memory_block(mem, i);
        struct kvm_userspace_memory_region r = {
            .slot = i,
            .guest_phys_addr = b->gpa,
            .memory_size = b->size,
            .userspace_addr = (uintptr_t)b->host,
        };
        if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
            error_setg_errno(errp, errno, "KVM_SET_USER_MEMORY_REGION for '%s' failed", b->name);
            return false;
        }
    }
    return true;
}

static bool kvm_init(VM *vm, GError **errp)
{
    KvmState *k = g_new0(KvmState, 1);

    k->vm_fd = -1;
    vm->accel_state = k;
    k->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (k->kvm_fd < 0) {
        error_setg_errno(errp, errno, "Could not access KVM kernel module");
        return false;
    }
    if (ioctl(k->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        error_setg(errp, "kvm version not supported");
        return false;
    }
    if (ioctl(k->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
        /* the pause protocol (vcpu_park) depends on it: Linux 4.11 and later */
        error_setg(errp, "kvm: KVM_CAP_IMMEDIATE_EXIT is not supported");
        return false;
    }
    do {
        k->vm_fd = ioctl(k->kvm_fd, KVM_CREATE_VM, 0);
    } while (k->vm_fd < 0 && errno == EINTR);
    if (k->vm_fd < 0) {
        error_setg_errno(errp, errno, "ioctl(KVM_CREATE_VM) failed");
        return false;
    }
    if (ioctl(k->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_GPA) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_TSS_ADDR failed");
        return false;
    }
    k->run_size = ioctl(k->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (k->run_size <= 0) {
        error_setg_errno(errp, errno, "KVM_GET_VCPU_MMAP_SIZE failed");
        return false;
    }
    k->cpuid = get_supported_cpuid(k->kvm_fd, errp);
    if (!k->cpuid || !kvm_map_memory(k, vm->mem, errp)) {
        return false;
    }
    struct sigaction sa = { .sa_handler = kick_handler, .sa_flags = SA_RESTART };
    sigemptyset(&sa.sa_mask);
    if (sigaction(KVM_KICK_SIGNAL, &sa, NULL) < 0) {
        error_setg_errno(errp, errno, "cannot install the vCPU kick handler");
        return false;
    }
    return true;
}

static bool kvm_set_cpuid(KvmState *k, KvmVcpu *v, guint index, GError **errp)
{
    size_t size = sizeof(*k->cpuid) + k->cpuid->nent * sizeof(k->cpuid->entries[0]);
    g_autofree struct kvm_cpuid2 *c = g_memdup2(k->cpuid, size);

    for (unsigned i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == 1) {
            e->ebx = (e->ebx & 0x00ffffff) | (index << 24);
        } else if (e->function == 0xb || e->function == 0x1f) {
            e->edx = index;
        }
    }
    if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_CPUID2 failed");
        return false;
    }
    return true;
}

static bool kvm_init_vcpu(VCPU *cpu, GError **errp)
{
    KvmState *k = cpu->vm->accel_state;
    KvmVcpu *v = g_new0(KvmVcpu, 1);

    cpu->accel = v;
    v->fd = ioctl(k->vm_fd, KVM_CREATE_VCPU, cpu->index);
    if (v->fd < 0) {
        error_setg_errno(errp, errno, "kvm_init_vcpu: kvm_get_vcpu failed (%u)", cpu->index);
        return false;
    }
    v->run = mmap(NULL, k->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        v->run = NULL;
        error_setg_errno(errp, errno, "mmap'ing vcpu state failed");
        return false;
    }
    return kvm_set_cpuid(k, v, cpu->index, errp);
}

/* ---- register state conversion ---- */

static void seg_from_kvm(X86Segment *d, const struct kvm_segment *s)
{
    d->selector = s->selector;
    d->limit = s->limit;
    d->base = s->base;
    d->flags = (uint32_t)s->type << SEG_FLAG_TYPE_SHIFT |
               (s->s ? SEG_FLAG_S : 0) | (uint32_t)s->dpl << SEG_FLAG_DPL_SHIFT |
               (s->present && !s->unusable ? SEG_FLAG_P : 0) | (s->avl ? SEG_FLAG_AVL : 0) |
               (s->l ? SEG_FLAG_L : 0) | (s->db ? SEG_FLAG_DB : 0) | (s->g ? SEG_FLAG_G : 0);
}

static void seg_to_kvm(struct kvm_segment *d, const X86Segment *s)
{
    memset(d, 0, sizeof(*d));
    d->selector = (uint16_t)s->selector;
    d->limit = s->limit;
    d->base = s->base;
    d->type = (s->flags >> SEG_FLAG_TYPE_SHIFT) & 0xf;
    d->s = !!(s->flags & SEG_FLAG_S);
    d->dpl = (s->flags >> SEG_FLAG_DPL_SHIFT) & 3;
    d->present = !!(s->flags & SEG_FLAG_P);
    d->avl = !!(s->flags & SEG_FLAG_AVL);
    d->l = !!(s->flags & SEG_FLAG_L);
    d->db = !!(s->flags & SEG_FLAG_DB);
    d->g = !!(s->flags & SEG_FLAG_G);
    d->unusable = !d->present;
}

static const int kvm_reg_order[16] = {
    /* X86CPUState.regs index -> offset in struct kvm_regs (u64 units) */
    [R_EAX] = 0, [R_EBX] = 1, [R_ECX] = 2, [R_EDX] = 3, [R_ESI] = 4, [R_EDI] = 5,
    [R_ESP] = 6, [R_EBP] = 7, [R_R8] = 8, [R_R9] = 9, [R_R10] = 10, [R_R11] = 11,
    [R_R12] = 12, [R_R13] = 13, [R_R14] = 14, [R_R15] = 15,
};

struct kvm_msrs_one {
    struct kvm_msrs hdr;
    struct kvm_msr_entry entry;
};

static bool kvm_get_state(VCPU *cpu, GError **errp)
{
    KvmVcpu *v = cpu->accel;
    X86CPUState *s = &cpu->state;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_msrs_one msrs = { .hdr.nmsrs = 1, .entry.index = MSR_KERNEL_GS_BASE };

    if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0 ||
        ioctl(v->fd, KVM_GET_MSRS, &msrs) != 1) {
        error_setg_errno(errp, errno, "cannot read the registers of CPU %u", cpu->index);
        return false;
    }
    const uint64_t *r = (const uint64_t *)&regs;
    for (int i = 0; i < 16; i++) {
        s->regs[i] = r[kvm_reg_order[i]];
    }
    s->rip = regs.rip;
    s->rflags = regs.rflags;
    seg_from_kvm(&s->cs, &sregs.cs);
    seg_from_kvm(&s->ds, &sregs.ds);
    seg_from_kvm(&s->es, &sregs.es);
    seg_from_kvm(&s->fs, &sregs.fs);
    seg_from_kvm(&s->gs, &sregs.gs);
    seg_from_kvm(&s->ss, &sregs.ss);
    seg_from_kvm(&s->tr, &sregs.tr);
    seg_from_kvm(&s->ldt, &sregs.ldt);
    s->gdt = (X86Table){ sregs.gdt.base, sregs.gdt.limit };
    s->idt = (X86Table){ sregs.idt.base, sregs.idt.limit };
    s->cr[0] = sregs.cr0;
    s->cr[2] = sregs.cr2;
    s->cr[3] = sregs.cr3;
    s->cr[4] = sregs.cr4;
    s->cr8 = sregs.cr8;
    s->efer = sregs.efer;
    s->apic_base = sregs.apic_base;
    s->kernel_gs_base = msrs.entry.data;
    return true;
}

static bool kvm_put_state(VCPU *cpu, GError **errp)
{
    KvmVcpu *v = cpu->accel;
    const X86CPUState *s = &cpu->state;
    struct kvm_regs regs = { 0 };
    struct kvm_sregs sregs;
    struct kvm_msrs_one msrs = { .hdr.nmsrs = 1, .entry.index = MSR_KERNEL_GS_BASE,
                                 .entry.data = s->kernel_gs_base };

    if (ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
        error_setg_errno(errp, errno, "cannot read the registers of CPU %u", cpu->index);
        return false;
    }
    uint64_t *r = (uint64_t *)&regs;
    for (int i = 0; i < 16; i++) {
        r[kvm_reg_order[i]] = s->regs[i];
    }
    regs.rip = s->rip;
    regs.rflags = s->rflags;
    seg_to_kvm(&sregs.cs, &s->cs);
    seg_to_kvm(&sregs.ds, &s->ds);
    seg_to_kvm(&sregs.es, &s->es);
    seg_to_kvm(&sregs.fs, &s->fs);
    seg_to_kvm(&sregs.gs, &s->gs);
    seg_to_kvm(&sregs.ss, &s->ss);
    seg_to_kvm(&sregs.tr, &s->tr);
    seg_to_kvm(&sregs.ldt, &s->ldt);
    sregs.gdt = (struct kvm_dtable){ .base = s->gdt.base, .limit = (uint16_t)s->gdt.limit };
    sregs.idt = (struct kvm_dtable){ .base = s->idt.base, .limit = (uint16_t)s->idt.limit };
    sregs.cr0 = s->cr[0];
    sregs.cr2 = s->cr[2];
    sregs.cr3 = s->cr[3];
    sregs.cr4 = s->cr[4];
    sregs.cr8 = s->cr8;
    sregs.efer = s->efer;
    sregs.apic_base = s->apic_base;
    if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0 || ioctl(v->fd, KVM_SET_REGS, &regs) < 0 ||
        ioctl(v->fd, KVM_SET_MSRS, &msrs) != 1) {
        error_setg_errno(errp, errno, "cannot write the registers of CPU %u", cpu->index);
        return false;
    }
    return true;
}

/* ---- exits ---- */

static void handle_io(VCPU *cpu, struct kvm_run *run)
{
    VM *vm = cpu->vm;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    uint16_t port = run->io.port;

    for (uint32_t n = 0; n < run->io.count; n++, data += run->io.size) {
        if (port >= SERIAL_BASE && port < SERIAL_BASE + SERIAL_PORTS && run->io.size == 1) {
            if (run->io.direction == KVM_EXIT_IO_OUT) {
                serial_io_write(vm->serial, port - SERIAL_BASE, *data);
            } else {
                *data = serial_io_read(vm->serial, port - SERIAL_BASE);
            }
        } else if (port == MINIVM_PORT_IDLE) {
            g_usleep(1000);
        } else {
            if (run->io.direction == KVM_EXIT_IO_IN) {
                memset(data, 0xff, run->io.size);
            }
            __atomic_add_fetch(&vm->unknown_port_accesses, 1, __ATOMIC_RELAXED);
        }
    }
}

static ExitAction handle_exit(VCPU *cpu, int ret, int err)
{
    KvmVcpu *v = cpu->accel;
    struct kvm_run *run = v->run;

    if (ret < 0) {
        if (err == EINTR || err == EAGAIN) {
            return EXIT_CONTINUE;
        }
        g_printerr("minivm: KVM_RUN failed on CPU %u: %s\n", cpu->index, g_strerror(err));
        return EXIT_ERROR;
    }
    cpu->exits++;
    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == MINIVM_PORT_EXIT) {
            return EXIT_GUEST_EXIT;
        }
        handle_io(cpu, run);
        return EXIT_CONTINUE;
    case KVM_EXIT_MMIO:
        if (!run->mmio.is_write) {
            memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
        }
        __atomic_add_fetch(&cpu->vm->unknown_port_accesses, 1, __ATOMIC_RELAXED);
        return EXIT_CONTINUE;
    case KVM_EXIT_HLT:
        return EXIT_HALT;
    case KVM_EXIT_SHUTDOWN:
        return EXIT_SHUTDOWN;
    case KVM_EXIT_INTR:
        return EXIT_CONTINUE;
    case KVM_EXIT_INTERNAL_ERROR:
        g_printerr("minivm: KVM internal error on CPU %u. Suberror: %u\n", cpu->index,
                   run->internal.suberror);
        return EXIT_ERROR;
    case KVM_EXIT_FAIL_ENTRY:
        g_printerr("minivm: KVM_EXIT_FAIL_ENTRY on CPU %u: hardware entry failure reason 0x%llx\n",
                   cpu->index, (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return EXIT_ERROR;
    default:
        g_printerr("minivm: unhandled KVM exit reason %u on CPU %u\n", run->exit_reason,
                   cpu->index);
        return EXIT_ERROR;
    }
}

static gboolean guest_shutdown_cb(gpointer opaque)
{
    vm_shutdown(opaque, true, "guest-shutdown");
    return G_SOURCE_REMOVE;
}

static gboolean guest_reset_cb(gpointer opaque)
{
    vm_shutdown(opaque, true, "guest-reset");
    return G_SOURCE_REMOVE;
}

static gboolean internal_error_cb(gpointer opaque)
{
    vm_internal_error(opaque);
    return G_SOURCE_REMOVE;
}

/* A guest reset, a guest exit or an error: the vCPU stops, the main loop acts. */
static void report_exit(VCPU *cpu, ExitAction action)
{
    VM *vm = cpu->vm;

    cpu->stop_requested = true;
    main_context_call(vm->main_context,
                      action == EXIT_SHUTDOWN ? guest_reset_cb :
                      action == EXIT_GUEST_EXIT ? guest_shutdown_cb : internal_error_cb, vm);
}

/* Called with cpu_lock held: finish pending I/O, save registers, park. */
static void vcpu_park(VCPU *cpu)
{
    KvmVcpu *v = cpu->accel;
    GError *err = NULL;

    v->run->immediate_exit = 1;
    while (ioctl(v->fd, KVM_RUN, 0) == 0) {
        /* Finishing the last exit's instruction needed userspace again (the next
         * batch of a rep outsb/insb, the next part of a split MMIO access): serve
         * that I/O too, then flush again. The guest does not run in between. */
        ExitAction action = handle_exit(cpu, 0, 0);
        if (action != EXIT_CONTINUE && action != EXIT_HALT) {
            report_exit(cpu, action);
        }
    }
    if (!kvm_get_state(cpu, &err)) {
        g_printerr("minivm: %s\n", err->message);
        g_error_free(err);
    }
    cpu->parked = true;
    g_cond_broadcast(&cpu->vm->cpu_cond);
}

static void vcpu_unpark(VCPU *cpu)
{
    GError *err = NULL;

    if (cpu->state_dirty && !kvm_put_state(cpu, &err)) {
        g_printerr("minivm: %s\n", err->message);
        g_error_free(err);
    }
    cpu->state_dirty = false;
    cpu->parked = false;
}

static gpointer vcpu_thread(gpointer opaque)
{
    VCPU *cpu = opaque;
    VM *vm = cpu->vm;
    KvmVcpu *v = cpu->accel;

    g_mutex_lock(&vm->cpu_lock);
    v->tid = pthread_self();
    cpu->thread_id = (int)gettid();
    v->tid_valid = true;
    for (;;) {
        if (cpu->stop_requested || cpu->quit) {
            if (!cpu->parked) {
                vcpu_park(cpu);
            }
            if (cpu->quit) {
                break;
            }
            g_cond_wait(&vm->cpu_cond, &vm->cpu_lock);
            continue;
        }
        if (cpu->parked) {
            vcpu_unpark(cpu);
        }
        v->run->immediate_exit = 0;
        g_mutex_unlock(&vm->cpu_lock);
        int ret = ioctl(v->fd, KVM_RUN, 0);
        ExitAction action = handle_exit(cpu, ret, errno);
        g_mutex_lock(&vm->cpu_lock);
        switch (action) {
        case EXIT_CONTINUE:
            break;
        case EXIT_HALT:
            /* No interrupts ever arrive: wait for the next stop request. */
            while (!cpu->stop_requested && !cpu->quit) {
                g_cond_wait(&vm->cpu_cond, &vm->cpu_lock);
            }
            break;
        case EXIT_SHUTDOWN:
        case EXIT_GUEST_EXIT:
        case EXIT_ERROR:
            report_exit(cpu, action);
            break;
        }
    }
    g_mutex_unlock(&vm->cpu_lock);
    return NULL;
}

static bool kvm_start(VM *vm, GError **errp)
{
    for (guint i = 0; i < vm->ncpus; i++) {
        VCPU *cpu = vm->cpus[i];
        KvmVcpu *v = cpu->accel;
        g_autofree char *name = g_strdup_printf("CPU %u/KVM", i);
        /* state was prepared by the loader: write it before the first run */
        GError *err = NULL;
        if (!kvm_put_state(cpu, &err)) {
            g_propagate_error(errp, err);
            return false;
        }
        cpu->state_dirty = false;
        v->thread = g_thread_try_new(name, vcpu_thread, cpu, &err);
        if (!v->thread) {
            g_propagate_error(errp, err);
            return false;
        }
    }
    /* Wait for every thread to park so that kicks have a target. */
    g_mutex_lock(&vm->cpu_lock);
    for (guint i = 0; i < vm->ncpus; i++) {
        while (!vm->cpus[i]->parked) {
            g_cond_wait(&vm->cpu_cond, &vm->cpu_lock);
        }
    }
    g_mutex_unlock(&vm->cpu_lock);
    return true;
}

static void kick(VCPU *cpu)
{
    KvmVcpu *v = cpu->accel;

    cpu->stop_requested = true;
    v->run->immediate_exit = 1;
    if (v->tid_valid) {
        pthread_kill(v->tid, KVM_KICK_SIGNAL);
    }
}

static void kvm_pause(VM *vm)
{
    g_mutex_lock(&vm->cpu_lock);
    for (guint i = 0; i < vm->ncpus; i++) {
        kick(vm->cpus[i]);
    }
    g_cond_broadcast(&vm->cpu_cond);
    for (guint i = 0; i < vm->ncpus; i++) {
        while (!vm->cpus[i]->parked) {
            g_cond_wait(&vm->cpu_cond, &vm->cpu_lock);
        }
    }
    g_mutex_unlock(&vm->cpu_lock);
}

static void kvm_resume(VM *vm)
{
    g_mutex_lock(&vm->cpu_lock);
    for (guint i = 0; i < vm->ncpus; i++) {
        vm->cpus[i]->stop_requested = false;
    }
    g_cond_broadcast(&vm->cpu_cond);
    g_mutex_unlock(&vm->cpu_lock);
}

static void kvm_destroy(VM *vm)
{
    KvmState *k = vm->accel_state;

    g_mutex_lock(&vm->cpu_lock);
    for (guint i = 0; vm->cpus && i < vm->ncpus; i++) {
        if (vm->cpus[i] && vm->cpus[i]->accel) {
            vm->cpus[i]->quit = true;
            kick(vm->cpus[i]);
        }
    }
    g_cond_broadcast(&vm->cpu_cond);
    g_mutex_unlock(&vm->cpu_lock);
    for (guint i = 0; vm->cpus && i < vm->ncpus; i++) {
        KvmVcpu *v = vm->cpus[i] ? vm->cpus[i]->accel : NULL;
        if (!v) {
            continue;
        }
        if (v->thread) {
            g_thread_join(v->thread);
        }
        if (v->run) {
            munmap(v->run, k->run_size);
        }
        if (v->fd >= 0) {
            close(v->fd);
        }
        g_free(v);
        vm->cpus[i]->accel = NULL;
    }
    if (k->vm_fd >= 0) {
        close(k->vm_fd);
    }
    if (k->kvm_fd >= 0) {
        close(k->kvm_fd);
    }
    g_free(k->cpuid);
    g_free(k);
    vm->accel_state = NULL;
}

const AccelOps accel_kvm_ops = {
    .name = "kvm",
    .init = kvm_init,
    .init_vcpu = kvm_init_vcpu,
    .start = kvm_start,
    .pause = kvm_pause,
    .resume = kvm_resume,
    .destroy = kvm_destroy,
};
