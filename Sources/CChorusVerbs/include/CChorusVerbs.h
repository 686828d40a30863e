#ifndef CCHORUS_VERBS_H
#define CCHORUS_VERBS_H
// libibverbs for the verbs transport, loaded at run time.
//
// The headers are needed to build (libibverbs-dev); the library is not linked. The exported
// functions Chorus calls are reached through chorus_ibv_* below, resolved with dlopen/dlsym on
// first use (as NCCL does); the data path (ibv_post_send, ibv_post_recv, ibv_poll_cq,
// ibv_req_notify_cq) is static inline in verbs.h and calls through the device's operation table.
// Macros Swift cannot call (ibv_reg_mr, ibv_query_port) have wrappers here.
//
// Without the headers this module is empty (and the package's RDMA trait should be disabled).
#if __has_include(<infiniband/verbs.h>)
#define CHORUS_HAVE_VERBS_HEADERS 1
#include <stddef.h>
#include <stdint.h>
#include <infiniband/verbs.h>

// Loads libibverbs (CHORUS_VERBS_LIBRARY, else libibverbs.so.1) once. Returns 0, or -1 with the
// reason in `why`.
int chorus_verbs_load(char *why, size_t capacity);

// ibv_get_device_list; on NULL, *error_number holds errno (ENOSYS: no RDMA subsystem in the kernel).
struct ibv_device **chorus_ibv_get_device_list(int *count, int *error_number);
void chorus_ibv_free_device_list(struct ibv_device **list);
const char *chorus_ibv_get_device_name(struct ibv_device *device);
struct ibv_context *chorus_ibv_open_device(struct ibv_device *device);
int chorus_ibv_close_device(struct ibv_context *context);
int chorus_ibv_query_port(struct ibv_context *context, uint8_t port, struct ibv_port_attr *attributes);
int chorus_ibv_query_gid(struct ibv_context *context, uint8_t port, int index, union ibv_gid *gid);
struct ibv_pd *chorus_ibv_alloc_pd(struct ibv_context *context);
int chorus_ibv_dealloc_pd(struct ibv_pd *pd);
struct ibv_mr *chorus_ibv_reg_mr(struct ibv_pd *pd, void *address, size_t length, int access);
int chorus_ibv_dereg_mr(struct ibv_mr *mr);
struct ibv_comp_channel *chorus_ibv_create_comp_channel(struct ibv_context *context);
int chorus_ibv_destroy_comp_channel(struct ibv_comp_channel *channel);
struct ibv_cq *chorus_ibv_create_cq(struct ibv_context *context, int entries, struct ibv_comp_channel *channel);
int chorus_ibv_destroy_cq(struct ibv_cq *cq);
int chorus_ibv_get_cq_event(struct ibv_comp_channel *channel, struct ibv_cq **cq, void **context);
void chorus_ibv_ack_cq_events(struct ibv_cq *cq, unsigned int count);
struct ibv_qp *chorus_ibv_create_qp(struct ibv_pd *pd, struct ibv_qp_init_attr *attributes);
int chorus_ibv_destroy_qp(struct ibv_qp *qp);
int chorus_ibv_modify_qp(struct ibv_qp *qp, struct ibv_qp_attr *attributes, int mask);
const char *chorus_ibv_wc_status_str(enum ibv_wc_status status);
#endif
#endif
