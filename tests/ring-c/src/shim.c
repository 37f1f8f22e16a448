/* Instantiates Xen's io/ring.h for the differential test of xenpv::ring:
 * each function is one ring.h macro on a ring type, nothing more. */
#include <stdint.h>
#include <string.h>

/* ring.h asks the includer for its barriers (and the interface version
 * that uses the xen_ names). */
#define __XEN_INTERFACE_VERSION__ 0x00040e00
#define xen_mb() __sync_synchronize()
#define xen_rmb() __asm__ __volatile__("" ::: "memory")
#define xen_wmb() __asm__ __volatile__("" ::: "memory")

#include <xen/io/ring.h>

/* a: 12-byte requests, 16-byte responses (the union is 16, 8-aligned). */
struct a_req { uint32_t w[3]; };
struct a_rsp { uint64_t id; int16_t status; };
/* b: blkif-sized 112-byte requests, 16-byte responses. */
struct b_req { uint64_t w[14]; };
struct b_rsp { uint64_t id; int16_t status; };
/* c: 4-byte both ways. */
struct c_req { uint32_t w; };
struct c_rsp { uint32_t w; };

#define SHIM(T)                                                                \
DEFINE_RING_TYPES(T, struct T##_req, struct T##_rsp);                          \
size_t T##_front_state_size(void) { return sizeof(struct T##_front_ring); }    \
size_t T##_back_state_size(void) { return sizeof(struct T##_back_ring); }      \
size_t T##_entry_size(void) { return sizeof(union T##_sring_entry); }          \
/* Both ends over one fresh ring whose indices all stand at `start`. */    \
void T##_init(struct T##_front_ring *f, struct T##_back_ring *b, void *page,   \
              size_t bytes, RING_IDX start) {                                  \
    struct T##_sring *s = page;                                                \
    SHARED_RING_INIT(s);                                                       \
    s->req_prod = s->rsp_prod = start;                                         \
    s->req_event = s->rsp_event = start + 1;                                   \
    FRONT_RING_ATTACH(f, s, start, bytes);                                     \
    BACK_RING_ATTACH(b, s, start, bytes);                                      \
}                                                                              \
unsigned T##_front_size(struct T##_front_ring *r) { return RING_SIZE(r); }     \
unsigned T##_front_free(struct T##_front_ring *r) {                            \
    return RING_FREE_REQUESTS(r);                                              \
}                                                                              \
int T##_front_push(struct T##_front_ring *r, const void *req) {                \
    if (RING_FULL(r)) return 0;                                                \
    memcpy(RING_GET_REQUEST(r, r->req_prod_pvt), req, sizeof(struct T##_req)); \
    r->req_prod_pvt++;                                                         \
    return 1;                                                                  \
}                                                                              \
int T##_front_push_notify(struct T##_front_ring *r) {                          \
    int notify;                                                                \
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(r, notify);                            \
    return notify;                                                             \
}                                                                              \
unsigned T##_front_unconsumed(struct T##_front_ring *r) {                      \
    return RING_HAS_UNCONSUMED_RESPONSES(r);                                   \
}                                                                              \
int T##_front_poll(struct T##_front_ring *r, void *rsp) {                      \
    if (!RING_HAS_UNCONSUMED_RESPONSES(r)) return 0;                           \
    memcpy(rsp, RING_GET_RESPONSE(r, r->rsp_cons), sizeof(struct T##_rsp));    \
    r->rsp_cons++;                                                             \
    return 1;                                                                  \
}                                                                              \
int T##_front_final_check(struct T##_front_ring *r) {                          \
    int more;                                                                  \
    RING_FINAL_CHECK_FOR_RESPONSES(r, more);                                   \
    return more;                                                               \
}                                                                              \
unsigned T##_back_unconsumed(struct T##_back_ring *r) {                        \
    return RING_HAS_UNCONSUMED_REQUESTS(r);                                    \
}                                                                              \
int T##_back_poll(struct T##_back_ring *r, void *req) {                        \
    if (!RING_HAS_UNCONSUMED_REQUESTS(r)) return 0;                            \
    RING_COPY_REQUEST(r, r->req_cons, (struct T##_req *)req);                  \
    r->req_cons++;                                                             \
    return 1;                                                                  \
}                                                                              \
int T##_back_push(struct T##_back_ring *r, const void *rsp) {                  \
    if (r->rsp_prod_pvt == r->req_cons) return 0;                              \
    memcpy(RING_GET_RESPONSE(r, r->rsp_prod_pvt), rsp, sizeof(struct T##_rsp));\
    r->rsp_prod_pvt++;                                                         \
    return 1;                                                                  \
}                                                                              \
int T##_back_push_notify(struct T##_back_ring *r) {                            \
    int notify;                                                                \
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(r, notify);                           \
    return notify;                                                             \
}                                                                              \
int T##_back_final_check(struct T##_back_ring *r) {                            \
    int more;                                                                  \
    RING_FINAL_CHECK_FOR_REQUESTS(r, more);                                    \
    return more;                                                               \
}                                                                              \
/* The private indices: req_prod_pvt, rsp_cons; req_cons, rsp_prod_pvt. */     \
void T##_front_idx(struct T##_front_ring *r, RING_IDX out[2]) {                \
    out[0] = r->req_prod_pvt;                                                  \
    out[1] = r->rsp_cons;                                                      \
}                                                                              \
void T##_back_idx(struct T##_back_ring *r, RING_IDX out[2]) {                  \
    out[0] = r->req_cons;                                                      \
    out[1] = r->rsp_prod_pvt;                                                  \
}

/* One table of function pointers per ring type, read by src/lib.rs
 * (same field order as its `Fns`). */
struct fns {
    size_t req, rsp;
    size_t (*front_state_size)(void);
    size_t (*back_state_size)(void);
    size_t (*entry_size)(void);
    void *init, *front_size, *front_free, *front_push, *front_push_notify,
         *front_unconsumed, *front_poll, *front_final_check, *back_unconsumed,
         *back_poll, *back_push, *back_push_notify, *back_final_check,
         *front_idx, *back_idx;
};

#define TABLE(T)                                                               \
SHIM(T)                                                                        \
const struct fns *T##_fns(void) {                                              \
    static const struct fns f = {                                              \
        sizeof(struct T##_req), sizeof(struct T##_rsp),                        \
        T##_front_state_size, T##_back_state_size, T##_entry_size,             \
        (void *)T##_init, (void *)T##_front_size, (void *)T##_front_free,      \
        (void *)T##_front_push, (void *)T##_front_push_notify,                 \
        (void *)T##_front_unconsumed, (void *)T##_front_poll,                  \
        (void *)T##_front_final_check, (void *)T##_back_unconsumed,            \
        (void *)T##_back_poll, (void *)T##_back_push,                          \
        (void *)T##_back_push_notify, (void *)T##_back_final_check,            \
        (void *)T##_front_idx, (void *)T##_back_idx,                           \
    };                                                                         \
    return &f;                                                                 \
}

TABLE(a)
TABLE(b)
TABLE(c)
