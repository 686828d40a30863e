#include "CChorusVerbs.h"
#ifdef CHORUS_HAVE_VERBS_HEADERS
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    pthread_once_t once;
    int loaded;
    char why[512];
    struct ibv_device **(*get_device_list)(int *);
    void (*free_device_list)(struct ibv_device **);
    const char *(*get_device_name)(struct ibv_device *);
    struct ibv_context *(*open_device)(struct ibv_device *);
    int (*close_device)(struct ibv_context *);
    int (*query_port_compat)(struct ibv_context *, uint8_t, void *);
    int (*query_gid)(struct ibv_context *, uint8_t, int, union ibv_gid *);
    struct ibv_pd *(*alloc_pd)(struct ibv_context *);
    int (*dealloc_pd)(struct ibv_pd *);
    struct ibv_mr *(*reg_mr)(struct ibv_pd *, void *, size_t, int);
    int (*dereg_mr)(struct ibv_mr *);
    struct ibv_comp_channel *(*create_comp_channel)(struct ibv_context *);
    int (*destroy_comp_channel)(struct ibv_comp_channel *);
    struct ibv_cq *(*create_cq)(struct ibv_context *, int, void *, struct ibv_comp_channel *, int);
    int (*destroy_cq)(struct ibv_cq *);
    int (*get_cq_event)(struct ibv_comp_channel *, struct ibv_cq **, void **);
    void (*ack_cq_events)(struct ibv_cq *, unsigned int);
    struct ibv_qp *(*create_qp)(struct ibv_pd *, struct ibv_qp_init_attr *);
    int (*destroy_qp)(struct ibv_qp *);
    int (*modify_qp)(struct ibv_qp *, struct ibv_qp_attr *, int);
    const char *(*wc_status_str)(enum ibv_wc_status);
} lib = { .once = PTHREAD_ONCE_INIT };

static void load_once(void) {
    const char *name = getenv("CHORUS_VERBS_LIBRARY");
    if (name == NULL || name[0] == 0) name = "libibverbs.so.1";
    void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *e = dlerror();
        snprintf(lib.why, sizeof lib.why, "cannot load %s (%s); install rdma-core (Debian: libibverbs1 and a provider package such as ibverbs-providers) or set CHORUS_VERBS_LIBRARY",
                 name, e ? e : "unknown error");
        return;
    }
    const char *missing = NULL;
#define RESOLVE(field, symbol) \
    if ((*(void **)&lib.field = dlsym(handle, symbol)) == NULL && missing == NULL) missing = symbol;
    RESOLVE(get_device_list, "ibv_get_device_list")
    RESOLVE(free_device_list, "ibv_free_device_list")
    RESOLVE(get_device_name, "ibv_get_device_name")
    RESOLVE(open_device, "ibv_open_device")
    RESOLVE(close_device, "ibv_close_device")
    RESOLVE(query_port_compat, "ibv_query_port")
    RESOLVE(query_gid, "ibv_query_gid")
    RESOLVE(alloc_pd, "ibv_alloc_pd")
    RESOLVE(dealloc_pd, "ibv_dealloc_pd")
    RESOLVE(reg_mr, "ibv_reg_mr")
    RESOLVE(dereg_mr, "ibv_dereg_mr")
    RESOLVE(create_comp_channel, "ibv_create_comp_channel")
    RESOLVE(destroy_comp_channel, "ibv_destroy_comp_channel")
    RESOLVE(create_cq, "ibv_create_cq")
    RESOLVE(destroy_cq, "ibv_destroy_cq")
    RESOLVE(get_cq_event, "ibv_get_cq_event")
    RESOLVE(ack_cq_events, "ibv_ack_cq_events")
    RESOLVE(create_qp, "ibv_create_qp")
    RESOLVE(destroy_qp, "ibv_destroy_qp")
    RESOLVE(modify_qp, "ibv_modify_qp")
    RESOLVE(wc_status_str, "ibv_wc_status_str")
#undef RESOLVE
    if (missing != NULL) {
        snprintf(lib.why, sizeof lib.why, "%s has no symbol %s: not a libibverbs library", name, missing);
        return;
    }
    lib.loaded = 1;
}

int chorus_verbs_load(char *why, size_t capacity) {
    pthread_once(&lib.once, load_once);
    if (lib.loaded) return 0;
    if (why != NULL && capacity > 0) snprintf(why, capacity, "%s", lib.why);
    return -1;
}

#define REQUIRE_LOADED(failure) if (!lib.loaded) { errno = ENOSYS; return failure; }

struct ibv_device **chorus_ibv_get_device_list(int *count, int *error_number) {
    *error_number = ENOSYS;
    if (!lib.loaded) return NULL;
    errno = 0;
    struct ibv_device **list = lib.get_device_list(count);
    *error_number = list == NULL ? errno : 0;
    return list;
}
void chorus_ibv_free_device_list(struct ibv_device **list) { if (lib.loaded && list) lib.free_device_list(list); }
const char *chorus_ibv_get_device_name(struct ibv_device *device) { REQUIRE_LOADED("?") return lib.get_device_name(device); }
struct ibv_context *chorus_ibv_open_device(struct ibv_device *device) { REQUIRE_LOADED(NULL) return lib.open_device(device); }
int chorus_ibv_close_device(struct ibv_context *context) { REQUIRE_LOADED(-1) return lib.close_device(context); }

int chorus_ibv_query_port(struct ibv_context *context, uint8_t port, struct ibv_port_attr *attributes) {
    REQUIRE_LOADED(ENOSYS)
    // What verbs.h's ibv_query_port macro does, with the exported function resolved by dlsym.
    struct verbs_context *vctx = verbs_get_ctx_op(context, query_port);
    if (vctx == NULL) {
        memset(attributes, 0, sizeof *attributes);
        return lib.query_port_compat(context, port, attributes);
    }
    return vctx->query_port(context, port, attributes, sizeof *attributes);
}
int chorus_ibv_query_gid(struct ibv_context *context, uint8_t port, int index, union ibv_gid *gid) { REQUIRE_LOADED(-1) return lib.query_gid(context, port, index, gid); }
struct ibv_pd *chorus_ibv_alloc_pd(struct ibv_context *context) { REQUIRE_LOADED(NULL) return lib.alloc_pd(context); }
int chorus_ibv_dealloc_pd(struct ibv_pd *pd) { REQUIRE_LOADED(-1) return lib.dealloc_pd(pd); }
struct ibv_mr *chorus_ibv_reg_mr(struct ibv_pd *pd, void *address, size_t length, int access) { REQUIRE_LOADED(NULL) return lib.reg_mr(pd, address, length, access); }
int chorus_ibv_dereg_mr(struct ibv_mr *mr) { REQUIRE_LOADED(-1) return lib.dereg_mr(mr); }
struct ibv_comp_channel *chorus_ibv_create_comp_channel(struct ibv_context *context) { REQUIRE_LOADED(NULL) return lib.create_comp_channel(context); }
int chorus_ibv_destroy_comp_channel(struct ibv_comp_channel *channel) { REQUIRE_LOADED(-1) return lib.destroy_comp_channel(channel); }
struct ibv_cq *chorus_ibv_create_cq(struct ibv_context *context, int entries, struct ibv_comp_channel *channel) { REQUIRE_LOADED(NULL) return lib.create_cq(context, entries, NULL, channel, 0); }
int chorus_ibv_destroy_cq(struct ibv_cq *cq) { REQUIRE_LOADED(-1) return lib.destroy_cq(cq); }
int chorus_ibv_get_cq_event(struct ibv_comp_channel *channel, struct ibv_cq **cq, void **context) { REQUIRE_LOADED(-1) return lib.get_cq_event(channel, cq, context); }
void chorus_ibv_ack_cq_events(struct ibv_cq *cq, unsigned int count) { if (lib.loaded) lib.ack_cq_events(cq, count); }
struct ibv_qp *chorus_ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attributes) { REQUIRE_LOADED(NULL) return lib.create_qp(pd, attributes); }
int chorus_ibv_destroy_qp(struct ibv_qp *qp) { REQUIRE_LOADED(-1) return lib.destroy_qp(qp); }
int chorus_ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attributes, int mask) { REQUIRE_LOADED(-1) return lib.modify_qp(qp, attributes, mask); }
const char *chorus_ibv_wc_status_str(enum ibv_wc_status status) { REQUIRE_LOADED("unknown status (libibverbs not loaded)") return lib.wc_status_str(status); }
#endif
