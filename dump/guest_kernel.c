/* The guest kernel's VMCOREINFO for a dump, and the page filter of its dump level. */
#include "guest_kernel.h"
#include "page_filter.h"
#include "vmcoreinfo.h"
#include "vmcoreinfo_scan.h"

static const char *const source_names[] = {
    [DUMP_VMCOREINFO_NONE] = "none",
    [DUMP_VMCOREINFO_NOTE] = "guest-note",
    [DUMP_VMCOREINFO_GUEST_MEMORY] = "guest-memory",
};

const char *dump_vmcoreinfo_source_name(DumpVmcoreinfoSource s)
{
    return source_names[s];
}

/* The VMCOREINFO text of a note stream, or NULL. */
static const char *vmcoreinfo_text(GBytes *notes, size_t *len)
{
    gsize size;
    size_t off;
    const uint8_t *data = notes ? g_bytes_get_data(notes, &size) : NULL;

    return data && elf_note_find(data, size, "VMCOREINFO", &off, len)
               ? (const char *)data + off : NULL;
}

/* Can the request's dump level be applied with this note, reading through r? */
static bool filter_for(const DumpRequest *req, GBytes *note, const GuestReader *r,
                       PageFilter **filter, GError **errp)
{
    size_t len = 0;
    const char *text = vmcoreinfo_text(note, &len);

    *filter = NULL;
    return !req->has_dump_level ||
           page_filter_new((unsigned)req->dump_level, text, len, r, filter, errp);
}

/* The kernel's note in guest memory: where the memo says while it stands, else searched
 * for (the memo's place first). */
static GBytes *find_in_memory(VM *vm, const GuestReader *r, VmcoreinfoMemo *memo, uint64_t *gpa)
{
    bool running = vm_is_running(vm);
    GBytes *note;

    if (memo->stands && !running && memo->resumes == vm->resumes) {
        note = memo->found ? vmcoreinfo_note_at(r, memo->gpa) : NULL;
        if (note || !memo->found) {
            *gpa = memo->gpa;
            return note;
        }
    }
    /* registers are current only while the vCPUs do not run */
    const X86CPUState *cpu = vm->ncpus && !running ? &vm->cpus[0]->state : NULL;
    note = vmcoreinfo_search(r, cpu, memo->found ? memo->gpa : UINT64_MAX, gpa);
    *memo = (VmcoreinfoMemo){ .stands = !running, .resumes = vm->resumes, .found = note != NULL,
                              .gpa = *gpa };
    return note;
}

bool guest_kernel_find(VM *vm, const DumpRequest *req, VmcoreinfoMemo *memo, GuestKernel *k,
                       GError **errp)
{
    GuestReader r = { .mem = vm->mem };
    size_t len;
    PageFilter *filter;

    *k = (GuestKernel){ .source = DUMP_VMCOREINFO_NONE };
    if (vmcoreinfo_text(vm->guest_note, &len)) {
        k->source = DUMP_VMCOREINFO_NOTE;
        k->note = g_bytes_ref(vm->guest_note);
    } else if ((k->note = find_in_memory(vm, &r, memo, &k->gpa))) {
        k->source = DUMP_VMCOREINFO_GUEST_MEMORY;
    }
    bool ok = filter_for(req, k->note, &r, &filter, errp);
    page_filter_free(filter);
    return ok;
}

bool guest_kernel_attach(const GuestKernel *k, const DumpRequest *req, DumpJob *job,
                         GError **errp)
{
    job->guest_note = k->source == DUMP_VMCOREINFO_GUEST_MEMORY
                          ? vmcoreinfo_note_at(&job->reader, k->gpa)
                          : k->note ? g_bytes_ref(k->note) : NULL;
    job->has_dump_level = req->has_dump_level;
    job->dump_level = (unsigned)req->dump_level;
    return filter_for(req, job->guest_note, &job->reader, &job->filter, errp);
}

void guest_kernel_clear(GuestKernel *k)
{
    g_clear_pointer(&k->note, g_bytes_unref);
}
