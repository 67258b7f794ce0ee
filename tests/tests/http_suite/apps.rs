//! The suite's app, described once ([`ROUTES`]) and built on each framework ([`App`]).
//!
//! Every behaviour is implemented the idiomatic way for its framework (an axum `IntoResponse`
//! error, an actix `ResponseError`), so the suite compares what a user of each would get.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tracepost::TracepostHandle;

/// What a route does; each framework implements every behaviour the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// `{"id": N}` with an INFO breadcrumb.
    User,
    /// An INFO and an ERROR log, then `500 inventory unavailable`.
    Fail,
    /// The handler returns its framework's error type, whose status is 500.
    HandlerError,
    /// The handler panics after an INFO log.
    Panic,
    /// The body sends one chunk, then its producer panics.
    PanicMidStream,
    /// 10 MiB in 160 chunks of 64 KiB (byte `0x80 | i % 127` for chunk `i`); chunks after the
    /// first are produced only once the client has received the first bytes ([`Gate`]).
    Big,
    /// Three server-sent events, 150 ms apart.
    Sse,
    /// Reads the JSON body, logs a line with secrets in fields and text, answers 500 with the
    /// body echoed (so the snapshot keeps both bodies).
    Login,
    /// A WebSocket upgrade whose session echoes text messages.
    WebSocket,
    /// Sleeps [`HANG`] (the client goes away first).
    Hang,
}

/// The suite's routes: method, pattern, behaviour.
pub const ROUTES: &[(&str, &str, Behaviour)] = &[
    ("GET", "/users/{id}", Behaviour::User),
    ("GET", "/fail", Behaviour::Fail),
    ("GET", "/orders/{id}", Behaviour::HandlerError),
    ("GET", "/panic", Behaviour::Panic),
    ("GET", "/panic-stream", Behaviour::PanicMidStream),
    ("GET", "/big", Behaviour::Big),
    ("GET", "/sse", Behaviour::Sse),
    ("POST", "/login", Behaviour::Login),
    ("GET", "/hang", Behaviour::Hang),
    ("GET", "/ws", Behaviour::WebSocket),
];

/// How long `/hang` sleeps: actix-web does not cancel a handler whose HTTP/1 client went away
/// (it notices when it writes the response), so the suite keeps this short.
pub const HANG: Duration = Duration::from_secs(2);

pub const BIG_CHUNK: usize = 64 * 1024;
pub const BIG_CHUNKS: usize = 160;

pub fn big_byte(chunk: usize) -> u8 {
    0x80 | (chunk % 127) as u8
}

/// Opened by the client once it has the first bytes of `/big`: the server cannot have
/// buffered the whole body before sending it.
#[derive(Clone)]
pub struct Gate(pub Arc<tokio::sync::watch::Sender<bool>>);

impl Gate {
    pub fn new() -> Self {
        Gate(Arc::new(tokio::sync::watch::channel(false).0))
    }

    pub fn open(&self) {
        self.0.send_replace(true);
    }

    async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// The chunks of `/big`, produced lazily.
fn big_stream(
    gate: Gate,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::iter(0..BIG_CHUNKS).then(move |i| {
        let gate = gate.clone();
        async move {
            if i == 1 {
                gate.wait().await;
            }
            Ok(Bytes::from(vec![big_byte(i); BIG_CHUNK]))
        }
    })
}

fn sse_stream() -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
{
    futures_util::stream::iter(0..3).then(|i| async move {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        Ok(Bytes::from(format!("data: event {i}\n\n")))
    })
}

fn panic_stream() -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static
{
    futures_util::stream::iter(0..2).map(|i| {
        if i == 1 {
            panic!("the stream broke after its first chunk");
        }
        Ok(Bytes::from_static(b"first chunk\n"))
    })
}

fn login(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body).into_owned();
    tracing::warn!(
        token = "FIELDSECRET-9f1",
        "login for Bearer MSGSECRETTOKEN0123456789 failed"
    );
    text
}

/// A framework the suite runs against.
pub trait App {
    /// Its name in assertion messages.
    const NAME: &'static str;

    /// Serves [`ROUTES`] with tracepost (and `/metrics`) on 127.0.0.1, on a thread of its own
    /// with `dispatch` as its `tracing` subscriber, and returns the address.
    fn start(handle: TracepostHandle, dispatch: tracing::Dispatch, gate: Gate) -> SocketAddr;
}

/// axum 0.8 with `tp.layer()` and `tp.metrics_router()`.
pub struct Axum;

impl App for Axum {
    const NAME: &'static str = "axum";

    fn start(handle: TracepostHandle, dispatch: tracing::Dispatch, gate: Gate) -> SocketAddr {
        use axum::body::Body;
        use axum::http::StatusCode;
        use axum::response::{IntoResponse, Response};
        use axum::routing::{get, post};
        use tracepost::prelude::*;

        struct DbError(&'static str);
        impl IntoResponse for DbError {
            fn into_response(self) -> Response {
                (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
            }
        }

        let mut app = axum::Router::new();
        for &(_, pattern, behaviour) in ROUTES {
            let gate = gate.clone();
            let route = match behaviour {
                Behaviour::User => get(
                    |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                        tracing::info!(user_id = id, "loading user");
                        axum::Json(serde_json::json!({ "id": id }))
                    },
                ),
                Behaviour::Fail => get(|| async {
                    tracing::info!("connecting to the inventory service");
                    tracing::error!(error = "connection refused", "inventory lookup failed");
                    (StatusCode::INTERNAL_SERVER_ERROR, "inventory unavailable\n")
                }),
                Behaviour::HandlerError => {
                    get(|| async { Err::<String, _>(DbError("database timeout")) })
                }
                Behaviour::Panic => get(|| async {
                    tracing::info!("about to look up the cart");
                    if true {
                        panic!("cart must be loaded before checkout");
                    }
                    "unreachable"
                }),
                Behaviour::PanicMidStream => get(|| async { Body::from_stream(panic_stream()) }),
                Behaviour::Big => get(move || async move { Body::from_stream(big_stream(gate)) }),
                Behaviour::Sse => get(|| async {
                    (
                        [("content-type", "text/event-stream")],
                        Body::from_stream(sse_stream()),
                    )
                }),
                Behaviour::Login => post(|body: Bytes| async move {
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [("content-type", "application/json")],
                        login(&body),
                    )
                }),
                Behaviour::WebSocket => get(|ws: axum::extract::ws::WebSocketUpgrade| async move {
                    use axum::extract::ws::Message;
                    ws.on_upgrade(|mut socket| async move {
                        while let Some(Ok(msg)) = socket.recv().await {
                            if let Message::Text(t) = msg {
                                if socket.send(Message::Text(t)).await.is_err() {
                                    break;
                                }
                            }
                        }
                    })
                }),
                Behaviour::Hang => get(|| async {
                    tokio::time::sleep(HANG).await;
                    "late"
                }),
            };
            app = app.route(pattern, route);
        }
        let app = app.merge(handle.metrics_router()).layer(handle.layer());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _sub = tracing::dispatcher::set_default(&dispatch);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
                .unwrap();
            });
        });
        rx.recv().unwrap()
    }
}

/// actix-web 4 with `tp.actix()` and `tp.actix_metrics()`.
pub struct Actix;

impl App for Actix {
    const NAME: &'static str = "actix";

    fn start(handle: TracepostHandle, dispatch: tracing::Dispatch, gate: Gate) -> SocketAddr {
        use actix_web::{web, HttpResponse};
        use tracepost::prelude::*;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                actix_web::HttpServer::new(move || {
                    // The factory runs on each worker thread: make the pipeline's tracing
                    // layer that thread's subscriber for as long as it lives.
                    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                    let mut app = actix_web::App::new()
                        .wrap(handle.actix())
                        .service(handle.actix_metrics());
                    for &(method, pattern, behaviour) in ROUTES {
                        let gate = gate.clone();
                        let route = match method {
                            "POST" => web::post(),
                            _ => web::get(),
                        };
                        let route = match behaviour {
                            Behaviour::User => route.to(|id: web::Path<u32>| async move {
                                let id = id.into_inner();
                                tracing::info!(user_id = id, "loading user");
                                web::Json(serde_json::json!({ "id": id }))
                            }),
                            Behaviour::Fail => route.to(|| async {
                                tracing::info!("connecting to the inventory service");
                                tracing::error!(
                                    error = "connection refused",
                                    "inventory lookup failed"
                                );
                                HttpResponse::InternalServerError().body("inventory unavailable\n")
                            }),
                            Behaviour::HandlerError => route.to(|| async {
                                Err::<String, _>(actix_web::error::ErrorInternalServerError(
                                    "database timeout",
                                ))
                            }),
                            Behaviour::Panic => route.to(|| async {
                                tracing::info!("about to look up the cart");
                                if true {
                                    panic!("cart must be loaded before checkout");
                                }
                                "unreachable"
                            }),
                            Behaviour::PanicMidStream => {
                                route.to(|| async { HttpResponse::Ok().streaming(panic_stream()) })
                            }
                            Behaviour::Big => route.to(move || {
                                let gate = gate.clone();
                                async move { HttpResponse::Ok().streaming(big_stream(gate)) }
                            }),
                            Behaviour::Sse => route.to(|| async {
                                HttpResponse::Ok()
                                    .content_type("text/event-stream")
                                    .streaming(sse_stream())
                            }),
                            Behaviour::Login => route.to(|body: Bytes| async move {
                                HttpResponse::InternalServerError()
                                    .content_type("application/json")
                                    .body(login(&body))
                            }),
                            Behaviour::WebSocket => route.to(
                                |req: actix_web::HttpRequest, body: web::Payload| async move {
                                    let (response, mut session, mut stream) =
                                        actix_ws::handle(&req, body)?;
                                    actix_web::rt::spawn(async move {
                                        while let Some(Ok(msg)) = stream.recv().await {
                                            if let actix_ws::Message::Text(t) = msg {
                                                if session.text(t).await.is_err() {
                                                    break;
                                                }
                                            }
                                        }
                                    });
                                    Ok::<_, actix_web::Error>(response)
                                },
                            ),
                            Behaviour::Hang => route.to(|| async {
                                tokio::time::sleep(HANG).await;
                                "late"
                            }),
                        };
                        app = app.route(pattern, route);
                    }
                    app
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run()
                .await
                .unwrap();
            });
        });
        addr
    }
}
