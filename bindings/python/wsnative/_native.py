"""The C API, one declaration per function (include/wsnative.h), and the callback types.

Nothing here is public: the classes in ``wsnative`` are the API. Handles are plain integers
(``c_void_p``); strings go in as UTF-8 ``bytes`` and come back as ``bytes``.
"""

from __future__ import annotations

import ctypes
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int32,
    c_size_t,
    c_uint8,
    c_uint16,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any, Callable

from . import _lib

lib, library_path = _lib.load()

# wsn_status
OK = 0
ERR_INVALID_ARGUMENT = -1
ERR_INVALID_STATE = -2
ERR_DNS = -3
ERR_CONNECT = -4
ERR_TLS = -5
ERR_HANDSHAKE = -6
ERR_TIMEOUT = -7
ERR_PROTOCOL = -8
ERR_IO = -9
ERR_ABORTED = -10
ERR_INTERNAL = -11
ERR_WOULD_BLOCK = -12

# wsn_event_kind
EVENT_OPEN = 1
EVENT_MESSAGE = 2
EVENT_CLOSE = 3
EVENT_DRAIN = 4

# wsn_conn_send flags
SEND_TEXT = 1
SEND_NO_COMPRESS = 2

# wsn_*_options_set_send_queue_policy
SEND_QUEUE_REFUSE = 0
SEND_QUEUE_CLOSE = 1

# wsn_conn_state
STATE_CONNECTING = 0
STATE_OPEN = 1
STATE_CLOSING = 2
STATE_CLOSED = 3

# wsn_tls_roots
TLS_ROOTS_BUNDLED = 0
TLS_ROOTS_SYSTEM = 1
TLS_ROOTS_NONE = 2

# wsn_heartbeat
HEARTBEAT_PING = 0
HEARTBEAT_PONG = 1


class wsn_event(Structure):
    """struct wsn_event (borrowed: read it only during the callback)."""

    _fields_ = [
        ("kind", c_uint32),
        ("is_text", c_bool),
        ("data", c_void_p),
        ("len", c_size_t),
        ("close_code", c_uint16),
        ("was_clean", c_bool),
        ("reason", c_char_p),
        ("error", c_char_p),
        ("error_status", c_int32),
        ("http_status", c_uint16),
        ("sent_id", c_uint64),
        ("attempt", c_uint32),  # client-reach (issue 13): RECONNECTING, RECONNECT_GAVE_UP
        ("delay_ms", c_uint32),
    ]


# typedef void (*wsn_event_cb)(void *user_data, struct wsn_conn *conn, const struct wsn_event *event);
# The event arrives as an address (c_void_p) so the trampoline can view it without a copy.
wsn_event_cb = CFUNCTYPE(None, c_void_p, c_void_p, c_void_p)
# typedef void (*wsn_accept_cb)(void *user_data, struct wsn_request *request);
wsn_accept_cb = CFUNCTYPE(None, c_void_p, c_void_p)
# typedef void (*wsn_release_cb)(void *arg);
wsn_release_cb = CFUNCTYPE(None, c_void_p)
# typedef void (*wsn_http_cb)(void *user_data, struct wsn_request *request);
wsn_http_cb = CFUNCTYPE(None, c_void_p, c_void_p)
# typedef void (*wsn_lent_release_cb)(void *user_data, const uint8_t *data, size_t len);
wsn_lent_release_cb = CFUNCTYPE(None, c_void_p, c_void_p, c_size_t)

# typedef void (*wsn_log_fn)(void *user_data, wsn_log_level level, const char *target,
#                            const char *message, uint64_t conn_id);
wsn_log_fn = CFUNCTYPE(None, c_void_p, c_int32, c_char_p, c_char_p, c_uint64)

_status = c_int32
_ptr = c_void_p


def _fn(name: str, argtypes: list[Any], restype: Any) -> Callable[..., Any]:
    # What CDLL.__getattr__ returns (a name in typeshed only: the annotation is never evaluated).
    f: ctypes._NamedFuncPointer = getattr(lib, name)
    f.argtypes = argtypes
    f.restype = restype
    return f


# const char *wsn_last_error(void);
wsn_last_error = _fn("wsn_last_error", [], c_char_p)
# const char *wsn_version(void);
wsn_version = _fn("wsn_version", [], c_char_p)
# wsn_status wsn_runtime_set_io_threads(uint32_t threads);
wsn_runtime_set_io_threads = _fn("wsn_runtime_set_io_threads", [c_uint32], _status)
# wsn_status wsn_runtime_set_callback_threads(uint32_t threads);
wsn_runtime_set_callback_threads = _fn("wsn_runtime_set_callback_threads", [c_uint32], _status)
# void wsn_runtime_set_callback_spin_us(uint32_t microseconds);
wsn_runtime_set_callback_spin_us = _fn("wsn_runtime_set_callback_spin_us", [c_uint32], None)
# void wsn_shutdown(uint32_t grace_ms);
wsn_shutdown = _fn("wsn_shutdown", [c_uint32], None)

# wsn_status wsn_connect(const char *url, const wsn_client_options *options, wsn_event_cb on_event,
#                        void *user_data, wsn_conn **conn_out);
wsn_connect = _fn("wsn_connect", [c_char_p, _ptr, wsn_event_cb, c_void_p, POINTER(c_void_p)], _status)
# wsn_status wsn_conn_send_text(wsn_conn *conn, const char *data, size_t len);
wsn_conn_send_text = _fn("wsn_conn_send_text", [_ptr, c_char_p, c_size_t], _status)
# wsn_status wsn_conn_send_binary(wsn_conn *conn, const uint8_t *data, size_t len);
wsn_conn_send_binary = _fn("wsn_conn_send_binary", [_ptr, c_char_p, c_size_t], _status)
# wsn_status wsn_conn_send(wsn_conn *conn, const uint8_t *data, size_t len, uint32_t flags, uint64_t *id_out);
wsn_conn_send = _fn("wsn_conn_send", [_ptr, c_char_p, c_size_t, c_uint32, POINTER(c_uint64)], _status)
# wsn_status wsn_conn_send_nocopy(wsn_conn *conn, const uint8_t *data, size_t len, uint32_t flags,
#                                 wsn_lent_release_cb release, void *user_data, uint64_t *id_out);
# Declared for completeness; Connection.send copies: a release called back into Python on an
# I/O thread would wait for the GIL there, and the C ABI asks that it never blocks.
wsn_conn_send_nocopy = _fn(
    "wsn_conn_send_nocopy",
    [_ptr, c_char_p, c_size_t, c_uint32, wsn_lent_release_cb, c_void_p, POINTER(c_uint64)],
    _status,
)
# uint64_t wsn_conn_get_sent_id(const wsn_conn *conn);
wsn_conn_get_sent_id = _fn("wsn_conn_get_sent_id", [_ptr], c_uint64)
# wsn_status wsn_conn_ack(wsn_conn *conn, size_t count);
wsn_conn_ack = _fn("wsn_conn_ack", [_ptr, c_size_t], _status)
# wsn_status wsn_conn_close(wsn_conn *conn, uint16_t code, const char *reason);
wsn_conn_close = _fn("wsn_conn_close", [_ptr, c_uint16, c_char_p], _status)
# wsn_status wsn_conn_abort(wsn_conn *conn);
wsn_conn_abort = _fn("wsn_conn_abort", [_ptr], _status)
# wsn_conn_state wsn_conn_get_state(const wsn_conn *conn);
wsn_conn_get_state = _fn("wsn_conn_get_state", [_ptr], c_uint32)
# size_t wsn_conn_get_buffered_amount(const wsn_conn *conn);
wsn_conn_get_buffered_amount = _fn("wsn_conn_get_buffered_amount", [_ptr], c_size_t)
# const char *wsn_conn_get_peer_addr(const wsn_conn *conn);
wsn_conn_get_peer_addr = _fn("wsn_conn_get_peer_addr", [_ptr], c_char_p)
# uint64_t wsn_conn_get_id(const wsn_conn *conn);
wsn_conn_get_id = _fn("wsn_conn_get_id", [_ptr], c_uint64)
# const char *wsn_conn_get_subprotocol(const wsn_conn *conn);
wsn_conn_get_subprotocol = _fn("wsn_conn_get_subprotocol", [_ptr], c_char_p)
# const char *wsn_conn_get_extensions(const wsn_conn *conn);
wsn_conn_get_extensions = _fn("wsn_conn_get_extensions", [_ptr], c_char_p)
# wsn_status wsn_conn_set_drain_events(wsn_conn *conn, bool enabled, size_t low_water);
wsn_conn_set_drain_events = _fn("wsn_conn_set_drain_events", [_ptr, c_bool, c_size_t], _status)
# wsn_status wsn_conn_set_reading_paused(wsn_conn *conn, bool paused);
wsn_conn_set_reading_paused = _fn("wsn_conn_set_reading_paused", [_ptr, c_bool], _status)
# wsn_status wsn_conn_set_user_data(wsn_conn *conn, void *user_data);
wsn_conn_set_user_data = _fn("wsn_conn_set_user_data", [_ptr, c_void_p], _status)
# void *wsn_conn_get_user_data(const wsn_conn *conn);
wsn_conn_get_user_data = _fn("wsn_conn_get_user_data", [_ptr], c_void_p)
# void wsn_conn_free(wsn_conn *conn);
wsn_conn_free = _fn("wsn_conn_free", [_ptr], None)
# wsn_status wsn_conn_set_release_hook(wsn_conn *conn, wsn_release_cb release, void *arg);
wsn_conn_set_release_hook = _fn("wsn_conn_set_release_hook", [_ptr, wsn_release_cb, c_void_p], _status)

# wsn_client_options *wsn_client_options_new(void);
wsn_client_options_new = _fn("wsn_client_options_new", [], _ptr)
# void wsn_client_options_free(wsn_client_options *options);
wsn_client_options_free = _fn("wsn_client_options_free", [_ptr], None)
# wsn_status wsn_client_options_set_connect_timeout_ms(wsn_client_options *options, uint32_t ms);
wsn_client_options_set_connect_timeout_ms = _fn("wsn_client_options_set_connect_timeout_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_set_handshake_timeout_ms(wsn_client_options *options, uint32_t ms);
wsn_client_options_set_handshake_timeout_ms = _fn(
    "wsn_client_options_set_handshake_timeout_ms", [_ptr, c_uint32], _status
)
# wsn_status wsn_client_options_set_close_timeout_ms(wsn_client_options *options, uint32_t ms);
wsn_client_options_set_close_timeout_ms = _fn("wsn_client_options_set_close_timeout_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_set_close_max_ms(wsn_client_options *options, uint32_t ms);
wsn_client_options_set_close_max_ms = _fn("wsn_client_options_set_close_max_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_set_max_receive_messages(wsn_client_options *options, size_t messages);
wsn_client_options_set_max_receive_messages = _fn(
    "wsn_client_options_set_max_receive_messages", [_ptr, c_size_t], _status
)
# wsn_status wsn_client_options_set_manual_ack(wsn_client_options *options, bool manual);
wsn_client_options_set_manual_ack = _fn("wsn_client_options_set_manual_ack", [_ptr, c_bool], _status)
# wsn_status wsn_client_options_set_max_send_queue(wsn_client_options *options, size_t bytes);
wsn_client_options_set_max_send_queue = _fn("wsn_client_options_set_max_send_queue", [_ptr, c_size_t], _status)
# wsn_status wsn_client_options_set_send_queue_policy(wsn_client_options *options, uint32_t policy);
wsn_client_options_set_send_queue_policy = _fn("wsn_client_options_set_send_queue_policy", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_set_drain_events(wsn_client_options *options, bool enabled, size_t low_water);
wsn_client_options_set_drain_events = _fn("wsn_client_options_set_drain_events", [_ptr, c_bool, c_size_t], _status)
# wsn_status wsn_client_options_set_compression(wsn_client_options *options, bool enabled);
wsn_client_options_set_compression = _fn("wsn_client_options_set_compression", [_ptr, c_bool], _status)
# wsn_status wsn_client_options_set_compression_params(wsn_client_options *options, bool, bool, uint8_t, uint8_t);
wsn_client_options_set_compression_params = _fn(
    "wsn_client_options_set_compression_params", [_ptr, c_bool, c_bool, c_uint8, c_uint8], _status
)
# wsn_status wsn_client_options_set_compression_threshold(wsn_client_options *options, size_t bytes, uint32_t level);
wsn_client_options_set_compression_threshold = _fn(
    "wsn_client_options_set_compression_threshold", [_ptr, c_size_t, c_uint32], _status
)
# wsn_status wsn_client_options_set_inline_callbacks(wsn_client_options *options, bool enabled);
# Not used by the binding: Python callbacks take the GIL, which must never block an I/O thread.
wsn_client_options_set_inline_callbacks = _fn("wsn_client_options_set_inline_callbacks", [_ptr, c_bool], _status)
# wsn_status wsn_client_options_set_max_message_size(wsn_client_options *options, size_t bytes);
wsn_client_options_set_max_message_size = _fn("wsn_client_options_set_max_message_size", [_ptr, c_size_t], _status)
# wsn_status wsn_client_options_set_ping_interval_ms(wsn_client_options *options, uint32_t ms);
wsn_client_options_set_ping_interval_ms = _fn("wsn_client_options_set_ping_interval_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_set_pong_timeout_ms(wsn_client_options *options, uint32_t ms);
wsn_client_options_set_pong_timeout_ms = _fn("wsn_client_options_set_pong_timeout_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_set_heartbeat(wsn_client_options *options, uint32_t kind);
wsn_client_options_set_heartbeat = _fn("wsn_client_options_set_heartbeat", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_set_max_receive_queue(wsn_client_options *options, size_t bytes);
wsn_client_options_set_max_receive_queue = _fn("wsn_client_options_set_max_receive_queue", [_ptr, c_size_t], _status)
# wsn_status wsn_client_options_add_header(wsn_client_options *options, const char *name, const char *value);
wsn_client_options_add_header = _fn("wsn_client_options_add_header", [_ptr, c_char_p, c_char_p], _status)
# wsn_status wsn_client_options_add_subprotocol(wsn_client_options *options, const char *protocol);
wsn_client_options_add_subprotocol = _fn("wsn_client_options_add_subprotocol", [_ptr, c_char_p], _status)
# wsn_status wsn_client_options_set_origin(wsn_client_options *options, const char *origin);
wsn_client_options_set_origin = _fn("wsn_client_options_set_origin", [_ptr, c_char_p], _status)
# wsn_status wsn_client_options_set_tls_roots(wsn_client_options *options, uint32_t roots);
wsn_client_options_set_tls_roots = _fn("wsn_client_options_set_tls_roots", [_ptr, c_uint32], _status)
# wsn_status wsn_client_options_add_ca_file(wsn_client_options *options, const char *path);
wsn_client_options_add_ca_file = _fn("wsn_client_options_add_ca_file", [_ptr, c_char_p], _status)

# wsn_server_options *wsn_server_options_new(void);
wsn_server_options_new = _fn("wsn_server_options_new", [], _ptr)
# void wsn_server_options_free(wsn_server_options *options);
wsn_server_options_free = _fn("wsn_server_options_free", [_ptr], None)
# wsn_status wsn_server_options_set_handshake_timeout_ms(wsn_server_options *options, uint32_t ms);
wsn_server_options_set_handshake_timeout_ms = _fn(
    "wsn_server_options_set_handshake_timeout_ms", [_ptr, c_uint32], _status
)
# wsn_status wsn_server_options_set_max_header_size(wsn_server_options *options, size_t bytes);
wsn_server_options_set_max_header_size = _fn("wsn_server_options_set_max_header_size", [_ptr, c_size_t], _status)
# wsn_status wsn_server_options_set_close_timeout_ms(wsn_server_options *options, uint32_t ms);
wsn_server_options_set_close_timeout_ms = _fn("wsn_server_options_set_close_timeout_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_drain_timeout_ms(wsn_server_options *options, uint32_t ms);
wsn_server_options_set_drain_timeout_ms = _fn("wsn_server_options_set_drain_timeout_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_close_max_ms(wsn_server_options *options, uint32_t ms);
wsn_server_options_set_close_max_ms = _fn("wsn_server_options_set_close_max_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_max_receive_messages(wsn_server_options *options, size_t messages);
wsn_server_options_set_max_receive_messages = _fn(
    "wsn_server_options_set_max_receive_messages", [_ptr, c_size_t], _status
)
# wsn_status wsn_server_options_set_manual_ack(wsn_server_options *options, bool manual);
wsn_server_options_set_manual_ack = _fn("wsn_server_options_set_manual_ack", [_ptr, c_bool], _status)
# wsn_status wsn_server_options_set_max_send_queue(wsn_server_options *options, size_t bytes);
wsn_server_options_set_max_send_queue = _fn("wsn_server_options_set_max_send_queue", [_ptr, c_size_t], _status)
# wsn_status wsn_server_options_set_send_queue_policy(wsn_server_options *options, uint32_t policy);
wsn_server_options_set_send_queue_policy = _fn("wsn_server_options_set_send_queue_policy", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_drain_events(wsn_server_options *options, bool enabled, size_t low_water);
wsn_server_options_set_drain_events = _fn("wsn_server_options_set_drain_events", [_ptr, c_bool, c_size_t], _status)
# wsn_status wsn_server_options_set_compression(wsn_server_options *options, bool enabled);
wsn_server_options_set_compression = _fn("wsn_server_options_set_compression", [_ptr, c_bool], _status)
# wsn_status wsn_server_options_set_compression_params(wsn_server_options *options, bool, bool, uint8_t, uint8_t);
wsn_server_options_set_compression_params = _fn(
    "wsn_server_options_set_compression_params", [_ptr, c_bool, c_bool, c_uint8, c_uint8], _status
)
# wsn_status wsn_server_options_set_compression_threshold(wsn_server_options *options, size_t bytes, uint32_t level);
wsn_server_options_set_compression_threshold = _fn(
    "wsn_server_options_set_compression_threshold", [_ptr, c_size_t, c_uint32], _status
)
# wsn_status wsn_server_options_set_inline_callbacks(wsn_server_options *options, bool enabled);
# Not used by the binding: Python callbacks take the GIL, which must never block an I/O thread.
wsn_server_options_set_inline_callbacks = _fn("wsn_server_options_set_inline_callbacks", [_ptr, c_bool], _status)
# wsn_status wsn_server_options_set_max_message_size(wsn_server_options *options, size_t bytes);
wsn_server_options_set_max_message_size = _fn("wsn_server_options_set_max_message_size", [_ptr, c_size_t], _status)
# wsn_status wsn_server_options_set_ping_interval_ms(wsn_server_options *options, uint32_t ms);
wsn_server_options_set_ping_interval_ms = _fn("wsn_server_options_set_ping_interval_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_pong_timeout_ms(wsn_server_options *options, uint32_t ms);
wsn_server_options_set_pong_timeout_ms = _fn("wsn_server_options_set_pong_timeout_ms", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_heartbeat(wsn_server_options *options, uint32_t kind);
wsn_server_options_set_heartbeat = _fn("wsn_server_options_set_heartbeat", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_max_receive_queue(wsn_server_options *options, size_t bytes);
wsn_server_options_set_max_receive_queue = _fn("wsn_server_options_set_max_receive_queue", [_ptr, c_size_t], _status)
# wsn_status wsn_server_options_add_subprotocol(wsn_server_options *options, const char *protocol);
wsn_server_options_add_subprotocol = _fn("wsn_server_options_add_subprotocol", [_ptr, c_char_p], _status)
# wsn_status wsn_server_options_add_allowed_origin(wsn_server_options *options, const char *origin);
wsn_server_options_add_allowed_origin = _fn("wsn_server_options_add_allowed_origin", [_ptr, c_char_p], _status)
# wsn_status wsn_server_options_set_max_connections(wsn_server_options *options, size_t max);
wsn_server_options_set_max_connections = _fn("wsn_server_options_set_max_connections", [_ptr, c_size_t], _status)
# wsn_status wsn_server_options_set_tls(wsn_server_options *options, const char *cert_pem_path,
#                                       const char *key_pem_path);
wsn_server_options_set_tls = _fn("wsn_server_options_set_tls", [_ptr, c_char_p, c_char_p], _status)
# --- srv-defense (issue 15 section 2 and 3.5): handshake caps, plain HTTP, response headers
PENDING_HANDSHAKE_DROP_OLDEST = 0
PENDING_HANDSHAKE_REFUSE = 1
# wsn_status wsn_server_options_set_max_pending_handshakes(wsn_server_options *options, size_t max);
wsn_server_options_set_max_pending_handshakes = _fn(
    "wsn_server_options_set_max_pending_handshakes", [_ptr, c_size_t], _status)
# wsn_status wsn_server_options_set_max_pending_handshakes_per_ip(wsn_server_options *options, size_t max);
wsn_server_options_set_max_pending_handshakes_per_ip = _fn(
    "wsn_server_options_set_max_pending_handshakes_per_ip", [_ptr, c_size_t], _status)
# wsn_status wsn_server_options_set_pending_handshake_policy(wsn_server_options *options, uint32_t policy);
wsn_server_options_set_pending_handshake_policy = _fn(
    "wsn_server_options_set_pending_handshake_policy", [_ptr, c_uint32], _status)
# wsn_status wsn_server_options_set_http_handler(wsn_server_options *options, wsn_http_cb on_http);
wsn_server_options_set_http_handler = _fn("wsn_server_options_set_http_handler", [_ptr, wsn_http_cb], _status)
# const char *wsn_request_get_method(const wsn_request *request);
wsn_request_get_method = _fn("wsn_request_get_method", [_ptr], c_char_p)
# wsn_status wsn_request_add_response_header(wsn_request *request, const char *name, const char *value);
wsn_request_add_response_header = _fn("wsn_request_add_response_header", [_ptr, c_char_p, c_char_p], _status)
# wsn_status wsn_request_respond(wsn_request *request, uint16_t http_status, const uint8_t *body, size_t body_len);
wsn_request_respond = _fn("wsn_request_respond", [_ptr, c_uint16, c_char_p, c_size_t], _status)

# wsn_status wsn_server_listen(const char *host, uint16_t port, const wsn_server_options *options,
#                              wsn_accept_cb on_accept, wsn_event_cb on_event, void *user_data,
#                              wsn_server **server_out);
wsn_server_listen = _fn(
    "wsn_server_listen",
    [c_char_p, c_uint16, _ptr, wsn_accept_cb, wsn_event_cb, c_void_p, POINTER(c_void_p)],
    _status,
)
# uint16_t wsn_server_get_port(const wsn_server *server);
wsn_server_get_port = _fn("wsn_server_get_port", [_ptr], c_uint16)
# wsn_status wsn_server_stop(wsn_server *server, uint32_t drain_timeout_ms);
wsn_server_stop = _fn("wsn_server_stop", [_ptr, c_uint32], _status)
# void wsn_server_free(wsn_server *server);
wsn_server_free = _fn("wsn_server_free", [_ptr], None)
# wsn_status wsn_server_set_release_hook(wsn_server *server, wsn_release_cb release, void *arg);
wsn_server_set_release_hook = _fn("wsn_server_set_release_hook", [_ptr, wsn_release_cb, c_void_p], _status)

# Poll mode (the asyncio API takes events in batches from a queue).
class wsn_queued_event(Structure):
    """struct wsn_queued_event: valid until the next wsn_queue_poll on its queue."""

    _fields_ = [("conn", c_void_p), ("user_data", c_void_p), ("event", wsn_event)]


# wsn_status wsn_queue_new(wsn_queue **queue_out);
wsn_queue_new = _fn("wsn_queue_new", [POINTER(c_void_p)], _status)
# int32_t wsn_queue_get_fd(const wsn_queue *queue);
wsn_queue_get_fd = _fn("wsn_queue_get_fd", [_ptr], c_int32)
# size_t wsn_queue_poll(wsn_queue *queue, wsn_queued_event *events, size_t max, int32_t timeout_ms);
wsn_queue_poll = _fn("wsn_queue_poll", [_ptr, POINTER(wsn_queued_event), c_size_t, c_int32], c_size_t)
# void wsn_queue_wake(const wsn_queue *queue);
wsn_queue_wake = _fn("wsn_queue_wake", [_ptr], None)
# void wsn_queue_free(wsn_queue *queue);
wsn_queue_free = _fn("wsn_queue_free", [_ptr], None)
# wsn_status wsn_connect_queued(const char *url, const wsn_client_options *options, wsn_queue *queue,
#                               void *user_data, wsn_conn **conn_out);
wsn_connect_queued = _fn("wsn_connect_queued", [c_char_p, _ptr, _ptr, c_void_p, POINTER(c_void_p)], _status)
# wsn_status wsn_server_listen_queued(const char *host, uint16_t port, const wsn_server_options *options,
#                                     wsn_accept_cb on_accept, wsn_queue *queue, void *user_data,
#                                     wsn_server **server_out);
wsn_server_listen_queued = _fn(
    "wsn_server_listen_queued",
    [c_char_p, c_uint16, _ptr, wsn_accept_cb, _ptr, c_void_p, POINTER(c_void_p)],
    _status,
)

# const char *wsn_request_get_path(const wsn_request *request);
wsn_request_get_path = _fn("wsn_request_get_path", [_ptr], c_char_p)
# const char *wsn_request_get_query(const wsn_request *request);
wsn_request_get_query = _fn("wsn_request_get_query", [_ptr], c_char_p)
# const char *wsn_request_get_header(const wsn_request *request, const char *name);
wsn_request_get_header = _fn("wsn_request_get_header", [_ptr, c_char_p], c_char_p)
# size_t wsn_request_get_header_count(const wsn_request *request);
wsn_request_get_header_count = _fn("wsn_request_get_header_count", [_ptr], c_size_t)
# const char *wsn_request_get_header_name(const wsn_request *request, size_t index);
wsn_request_get_header_name = _fn("wsn_request_get_header_name", [_ptr, c_size_t], c_char_p)
# const char *wsn_request_get_header_value(const wsn_request *request, size_t index);
wsn_request_get_header_value = _fn("wsn_request_get_header_value", [_ptr, c_size_t], c_char_p)
# const char *wsn_request_get_peer_addr(const wsn_request *request);
wsn_request_get_peer_addr = _fn("wsn_request_get_peer_addr", [_ptr], c_char_p)
# size_t wsn_request_get_subprotocol_count(const wsn_request *request);
wsn_request_get_subprotocol_count = _fn("wsn_request_get_subprotocol_count", [_ptr], c_size_t)
# const char *wsn_request_get_subprotocol(const wsn_request *request, size_t index);
wsn_request_get_subprotocol = _fn("wsn_request_get_subprotocol", [_ptr, c_size_t], c_char_p)
# wsn_status wsn_request_accept(wsn_request *request, const char *subprotocol);
wsn_request_accept = _fn("wsn_request_accept", [_ptr, c_char_p], _status)
# wsn_status wsn_request_reject(wsn_request *request, uint16_t http_status, const char *body);
wsn_request_reject = _fn("wsn_request_reject", [_ptr, c_uint16, c_char_p], _status)
# wsn_status wsn_request_accept_and_close(wsn_request *request, uint16_t code, const char *reason);
wsn_request_accept_and_close = _fn("wsn_request_accept_and_close", [_ptr, c_uint16, c_char_p], _status)

# wsn_status wsn_log_set_callback(wsn_log_fn callback, uint32_t max_level, void *user_data);
wsn_log_set_callback = _fn("wsn_log_set_callback", [wsn_log_fn, c_uint32, c_void_p], _status)


# Operations (issue 15 §3): deadlines, tags, broadcast, drain, stats, pings.
#: WSN_STATS_VERSION: the version of the structs below.
STATS_VERSION = 1


class wsn_conn_stats(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("version", c_uint32),
        ("bytes_sent", c_uint64),
        ("bytes_received", c_uint64),
        ("messages_sent", c_uint64),
        ("messages_received", c_uint64),
        ("queued_bytes", c_uint64),
        ("last_rtt_us", c_uint64),
        ("rtt_count", c_uint64),
        ("age_ms", c_uint64),
    ]


class wsn_server_stats(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("version", c_uint32),
        ("open_connections", c_uint64),
        ("handshakes_in_progress", c_uint64),
        ("accepted_total", c_uint64),
        ("refused_total", c_uint64),
        ("closed_total", c_uint64),
    ]


class wsn_broadcast_report(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("version", c_uint32),
        ("queued", c_uint64),
        ("refused", c_uint64),
        ("not_open", c_uint64),
    ]


class wsn_drain_report(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("version", c_uint32),
        ("connections", c_uint64),
        ("closed_clean", c_uint64),
        ("aborted", c_uint64),
        ("failed", c_uint64),
    ]


_u16p, _u64p = POINTER(c_uint16), POINTER(c_uint64)

# wsn_status wsn_conn_set_deadline(wsn_conn *conn, uint64_t after_ms, uint16_t code, const char *reason);
wsn_conn_set_deadline = _fn("wsn_conn_set_deadline", [_ptr, c_uint64, c_uint16, c_char_p], _status)
# wsn_status wsn_request_set_deadline(wsn_request *request, uint64_t after_ms, uint16_t code, const char *reason);
wsn_request_set_deadline = _fn("wsn_request_set_deadline", [_ptr, c_uint64, c_uint16, c_char_p], _status)
# wsn_status wsn_request_add_tag(wsn_request *request, const char *tag);
wsn_request_add_tag = _fn("wsn_request_add_tag", [_ptr, c_char_p], _status)
# wsn_status wsn_conn_add_tag(wsn_conn *conn, const char *tag);
wsn_conn_add_tag = _fn("wsn_conn_add_tag", [_ptr, c_char_p], _status)
# wsn_status wsn_conn_remove_tag(wsn_conn *conn, const char *tag);
wsn_conn_remove_tag = _fn("wsn_conn_remove_tag", [_ptr, c_char_p], _status)
# bool wsn_conn_has_tag(const wsn_conn *conn, const char *tag);
wsn_conn_has_tag = _fn("wsn_conn_has_tag", [_ptr, c_char_p], c_bool)
# wsn_status wsn_server_close_tag(wsn_server *server, const char *tag, uint16_t code, const char *reason,
#                                 size_t *closed_out);
wsn_server_close_tag = _fn(
    "wsn_server_close_tag", [_ptr, c_char_p, c_uint16, c_char_p, POINTER(c_size_t)], _status
)
# size_t wsn_server_count_tag(const wsn_server *server, const char *tag);
wsn_server_count_tag = _fn("wsn_server_count_tag", [_ptr, c_char_p], c_size_t)
# size_t wsn_server_list_tag(const wsn_server *server, const char *tag, wsn_conn **out, size_t capacity);
wsn_server_list_tag = _fn("wsn_server_list_tag", [_ptr, c_char_p, POINTER(c_void_p), c_size_t], c_size_t)
# wsn_status wsn_server_broadcast(wsn_server *server, const char *tag, const uint8_t *data, size_t len,
#                                 uint32_t flags, wsn_broadcast_report *report);
wsn_server_broadcast = _fn(
    "wsn_server_broadcast",
    [_ptr, c_char_p, c_char_p, c_size_t, c_uint32, POINTER(wsn_broadcast_report)],
    _status,
)
# wsn_status wsn_server_drain(wsn_server *server, uint32_t window_ms, uint16_t code, const char *reason,
#                             wsn_drain_report *report);
wsn_server_drain = _fn(
    "wsn_server_drain", [_ptr, c_uint32, c_uint16, c_char_p, POINTER(wsn_drain_report)], _status
)
# wsn_status wsn_conn_get_stats(const wsn_conn *conn, wsn_conn_stats *stats);
wsn_conn_get_stats = _fn("wsn_conn_get_stats", [_ptr, POINTER(wsn_conn_stats)], _status)
# wsn_status wsn_conn_ping(wsn_conn *conn);
wsn_conn_ping = _fn("wsn_conn_ping", [_ptr], _status)
# wsn_status wsn_server_get_stats(const wsn_server *server, wsn_server_stats *stats);
wsn_server_get_stats = _fn("wsn_server_get_stats", [_ptr, POINTER(wsn_server_stats)], _status)
# size_t wsn_server_get_refusals(const wsn_server *server, uint16_t *statuses, uint64_t *counts, size_t capacity);
wsn_server_get_refusals = _fn("wsn_server_get_refusals", [_ptr, _u16p, _u64p, c_size_t], c_size_t)
# size_t wsn_server_get_closes(const wsn_server *server, uint16_t *codes, uint64_t *counts, size_t capacity);
wsn_server_get_closes = _fn("wsn_server_get_closes", [_ptr, _u16p, _u64p, c_size_t], c_size_t)


def last_error() -> str:
    """This thread's last native error message (read right after the failing call)."""
    return (wsn_last_error() or b"").decode("utf-8", "replace")


def version() -> str:
    return (wsn_version() or b"").decode("ascii", "replace")


# --- client-reach (issue 13): certificates ---
# typedef bool (*wsn_cert_check_cb)(void *user_data, const char *host, const uint8_t *const *certs,
#                                   const size_t *cert_lens, size_t count, const char *default_error);
wsn_cert_check_cb = CFUNCTYPE(c_bool, c_void_p, c_char_p, POINTER(POINTER(c_uint8)), POINTER(c_size_t), c_size_t,
                              c_char_p)
# wsn_status wsn_client_options_set_client_cert_files(wsn_client_options *o, const char *chain, const char *key);
wsn_client_options_set_client_cert_files = _fn(
    "wsn_client_options_set_client_cert_files", [_ptr, c_char_p, c_char_p], _status)
# wsn_status wsn_client_options_set_client_cert_pem(wsn_client_options *o, const char *chain, const char *key);
wsn_client_options_set_client_cert_pem = _fn(
    "wsn_client_options_set_client_cert_pem", [_ptr, c_char_p, c_char_p], _status)
# wsn_status wsn_client_options_add_trusted_cert_file(wsn_client_options *o, const char *pem_path);
wsn_client_options_add_trusted_cert_file = _fn("wsn_client_options_add_trusted_cert_file", [_ptr, c_char_p], _status)
# wsn_status wsn_client_options_add_trusted_fingerprint(wsn_client_options *o, const char *sha256_hex);
wsn_client_options_add_trusted_fingerprint = _fn(
    "wsn_client_options_add_trusted_fingerprint", [_ptr, c_char_p], _status)
# wsn_status wsn_client_options_set_cert_check(wsn_client_options *o, wsn_cert_check_cb check, void *user_data);
wsn_client_options_set_cert_check = _fn(
    "wsn_client_options_set_cert_check", [_ptr, wsn_cert_check_cb, c_void_p], _status)
# wsn_status wsn_server_options_set_client_auth(wsn_server_options *o, const char *ca_pem_path, bool required);
wsn_server_options_set_client_auth = _fn("wsn_server_options_set_client_auth", [_ptr, c_char_p, c_bool], _status)
# const char *wsn_request_get_peer_cert_subject(const wsn_request *request);
wsn_request_get_peer_cert_subject = _fn("wsn_request_get_peer_cert_subject", [_ptr], c_char_p)
# wsn_status wsn_cert_fingerprint_sha256(const uint8_t *der, size_t len, char *out, size_t out_len);
wsn_cert_fingerprint_sha256 = _fn("wsn_cert_fingerprint_sha256", [c_char_p, c_size_t, c_char_p, c_size_t], _status)

# --- client-reach (issue 13): proxies ---
# wsn_status wsn_client_options_set_proxy(wsn_client_options *o, const char *proxy_url);
wsn_client_options_set_proxy = _fn("wsn_client_options_set_proxy", [_ptr, c_char_p], _status)
# wsn_status wsn_client_options_set_proxy_from_env(wsn_client_options *o, bool enabled);
wsn_client_options_set_proxy_from_env = _fn("wsn_client_options_set_proxy_from_env", [_ptr, c_bool], _status)
# wsn_status wsn_client_options_add_proxy_header(wsn_client_options *o, const char *name, const char *value);
wsn_client_options_add_proxy_header = _fn("wsn_client_options_add_proxy_header", [_ptr, c_char_p, c_char_p], _status)

# --- client-reach (issue 13): the handshake response ---
# uint16_t wsn_conn_get_response_status(const wsn_conn *conn);
wsn_conn_get_response_status = _fn("wsn_conn_get_response_status", [_ptr], c_uint16)
# const char *wsn_conn_get_response_header(const wsn_conn *conn, const char *name);
wsn_conn_get_response_header = _fn("wsn_conn_get_response_header", [_ptr, c_char_p], c_char_p)
# size_t wsn_conn_get_response_header_count(const wsn_conn *conn);
wsn_conn_get_response_header_count = _fn("wsn_conn_get_response_header_count", [_ptr], c_size_t)
# const char *wsn_conn_get_response_header_name(const wsn_conn *conn, size_t index);
wsn_conn_get_response_header_name = _fn("wsn_conn_get_response_header_name", [_ptr, c_size_t], c_char_p)
# const char *wsn_conn_get_response_header_value(const wsn_conn *conn, size_t index);
wsn_conn_get_response_header_value = _fn("wsn_conn_get_response_header_value", [_ptr, c_size_t], c_char_p)

# --- client-reach (issue 13): reconnect ---
EVENT_RECONNECTING = 5
EVENT_RECONNECT_GAVE_UP = 6
OFFLINE_REFUSE, OFFLINE_DROP_OLDEST, OFFLINE_DROP_NEWEST = 0, 1, 2
wsn_reconnect_policy_new = _fn("wsn_reconnect_policy_new", [], _ptr)
wsn_reconnect_policy_free = _fn("wsn_reconnect_policy_free", [_ptr], None)
wsn_reconnect_policy_set_delays = _fn("wsn_reconnect_policy_set_delays", [_ptr, c_uint32, c_uint32], _status)
wsn_reconnect_policy_set_budget = _fn("wsn_reconnect_policy_set_budget", [_ptr, c_uint32, c_uint32], _status)
wsn_reconnect_policy_add_stop_code = _fn("wsn_reconnect_policy_add_stop_code", [_ptr, c_uint16], _status)
wsn_reconnect_policy_add_stop_status = _fn("wsn_reconnect_policy_add_stop_status", [_ptr, c_uint16], _status)
wsn_reconnect_policy_set_offline_queue = _fn(
    "wsn_reconnect_policy_set_offline_queue", [_ptr, c_size_t, c_uint32], _status)
wsn_client_options_set_reconnect = _fn("wsn_client_options_set_reconnect", [_ptr, _ptr], _status)

# --- client-reach (issue 13): pool ---
wsn_pool_new = _fn("wsn_pool_new", [c_char_p, _ptr, c_size_t, POINTER(c_void_p)], _status)
wsn_pool_take = _fn("wsn_pool_take", [_ptr, wsn_event_cb, c_void_p, POINTER(c_void_p)], _status)
wsn_pool_ready = _fn("wsn_pool_ready", [_ptr], c_size_t)
wsn_pool_free = _fn("wsn_pool_free", [_ptr], None)
ERR_WOULD_BLOCK_POOL = -12
