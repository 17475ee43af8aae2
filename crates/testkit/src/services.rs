//! Private RabbitMQ nodes, a private three-node RabbitMQ cluster and PostgreSQL servers that
//! fault tests may stop, kill and restart without touching the shared services on :5672 and
//! :5432 that other tests use.
//!
//! Each service gets its own ports, node name or socket directory and a temporary directory under
//! `/tmp`. Dropping the handle stops the service and deletes the directory, also while a test
//! panics. A small watchdog process (`sh`) does the same if the test process dies without running
//! destructors (SIGKILL, `abort`), so nothing is left running either way.
//!
//! Both need root: RabbitMQ runs as the `rabbitmq` user (so `rabbitmqctl`, which switches to that
//! user, shares its Erlang cookie in `/var/lib/rabbitmq`), PostgreSQL as `postgres`.

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The RabbitMQ start script that runs the node in the foreground (the `/usr/sbin` wrapper
/// switches users and redirects output itself).
const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
/// Home of the `rabbitmq` user: its `.erlang.cookie` is the one `rabbitmqctl` uses.
const RABBITMQ_HOME: &str = "/var/lib/rabbitmq";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// How long a node or server may take to start (a RabbitMQ node takes about 6 s here).
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Tries, each on a newly chosen port, before giving up starting a service.
const START_ATTEMPTS: usize = 3;

/// Next port to try, per kind, so services started one after the other do not reuse a port
/// that the previous one has just released.
static NEXT_RABBIT_PORT: AtomicU16 = AtomicU16::new(0);
static NEXT_PG_PORT: AtomicU16 = AtomicU16::new(0);

/// Held by every test that starts private services, so they run one at a time: each boots
/// servers, and two at once on a two-core machine only slow each other down.
pub static PRIVATE_SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A RabbitMQ node of our own: `herald-chaos-<pid>-<port>@localhost`, AMQP on `port`, Erlang
/// distribution on `port + 20000`, no plugins, Mnesia and logs in a temporary directory.
#[derive(Debug)]
pub struct PrivateRabbit {
    /// The Erlang node name, for `rabbitmqctl -n`.
    pub node: String,
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl PrivateRabbit {
    /// Boots a fresh node and waits until it accepts AMQP connections. A port taken between
    /// the check and the boot (another test run choosing the same one) means a retry on another.
    pub async fn start() -> anyhow::Result<PrivateRabbit> {
        require_root("a private RabbitMQ node")?;
        let mut failure = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once().await {
                Ok(rabbit) => return Ok(rabbit),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.expect("at least one attempt"))
    }

    async fn start_once() -> anyhow::Result<PrivateRabbit> {
        let port = free_port(&NEXT_RABBIT_PORT, 5701, 5799, |p| [p, p + 20_000])?;
        let node = format!("herald-chaos-{}-{port}@localhost", std::process::id());
        let dir = temp_dir("herald-rabbit")?;
        for sub in ["mnesia", "log"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(dir.join("enabled_plugins"), "[].\n")?;
        fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )?;
        chown(&dir, "rabbitmq")?;
        let mut rabbit = PrivateRabbit {
            node,
            port,
            dir,
            server: None,
            watchdog: None,
        };
        // From here on, Drop cleans up whatever happens.
        rabbit.watchdog = Some(watchdog(&format!(
            "rabbitmqctl -q -n {node} stop >/dev/null 2>&1; \
             kill -KILL -- -$(cat {dir}/server.pgid) 2>/dev/null; rm -rf {dir}",
            node = rabbit.node,
            dir = rabbit.dir.display(),
        ))?);
        rabbit.start_node().await?;
        Ok(rabbit)
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `rabbitmqctl stop_app`: the broker closes every connection and stops listening; the Erlang
    /// node (and the queues' data) stays.
    pub async fn stop_app(&self) -> anyhow::Result<()> {
        self.ctl(&["stop_app"]).await
    }

    /// `rabbitmqctl start_app`, then waits until AMQP connections are accepted.
    pub async fn start_app(&mut self) -> anyhow::Result<()> {
        self.ctl(&["start_app"]).await?;
        self.wait_listening().await
    }

    /// Stops the whole node (the Erlang VM exits); durable queues and persistent messages stay on
    /// disk for [`PrivateRabbit::start_node`].
    pub async fn stop_node(&mut self) -> anyhow::Result<()> {
        let pid_file = self.dir.join("pid").display().to_string();
        self.ctl(&["stop", &pid_file]).await?;
        if let Some(mut server) = self.server.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while server.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    kill_group(&server);
                    let _ = server.wait();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Boots the node (again, after [`PrivateRabbit::stop_node`]) on the same data directory.
    pub async fn start_node(&mut self) -> anyhow::Result<()> {
        if self.server.is_some() {
            bail!("node {} is already running", self.node);
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.out"))?;
        let dir = &self.dir;
        let server = Command::new("runuser")
            .args(["-u", "rabbitmq", "--", RABBITMQ_SERVER])
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", (self.port + 20_000).to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("HOME", RABBITMQ_HOME)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("could not run runuser to start a private RabbitMQ node")?;
        fs::write(dir.join("server.pgid"), server.id().to_string())?;
        self.server = Some(server);
        self.wait_listening().await
    }

    /// Waits until the AMQP port accepts connections and the node says it has booted (so a
    /// listener of someone else's on the port does not count); fails with the node's log if the
    /// node exits or does not come up in time.
    async fn wait_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if port_open(self.port) {
                return match self.ctl(&["await_startup", "--timeout", "60"]).await {
                    Ok(()) => Ok(()),
                    Err(e) => bail!(
                        "RabbitMQ node {} did not boot: {e:#}\n{}",
                        self.node,
                        tail(&self.dir.join("server.out"))
                    ),
                };
            }
            if let Some(server) = self.server.as_mut()
                && let Some(status) = server.try_wait()?
            {
                self.server = None;
                bail!(
                    "RabbitMQ node {} exited ({status}) while starting:\n{}",
                    self.node,
                    tail(&self.dir.join("server.out"))
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "RabbitMQ node {} did not listen on {} within {START_TIMEOUT:?}:\n{}",
                    self.node,
                    self.port,
                    tail(&self.dir.join("server.out"))
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `rabbitmqctl -q -n <node> <args>` off the async threads.
    pub async fn ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        self.ctl_output("rabbitmqctl", args).await.map(drop)
    }

    /// Runs `<tool> -q -n <node> <args>` off the async threads (`tool` is one of the RabbitMQ
    /// CLI tools: `rabbitmqctl`, `rabbitmq-queues`, `rabbitmq-diagnostics`); returns its output.
    pub async fn ctl_output(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut full = vec!["-q".to_owned(), "-n".to_owned(), self.node.clone()];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        run_output(tool, full).await
    }
}

impl Drop for PrivateRabbit {
    /// Stops the node, kills its process group if it does not stop, deletes the directory.
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("rabbitmqctl")
                .args(["-q", "-n", &self.node, "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            wait_or_kill(&mut server, Duration::from_secs(20));
        }
        stop_watchdog(self.watchdog.take());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Three [`PrivateRabbit`] nodes joined into one cluster (`rabbitmqctl join_cluster`): distinct
/// node names, AMQP and distribution ports, the same Erlang cookie (the `rabbitmq` user's).
/// Quorum queues declared on it get a member on every node, so any one node may be stopped.
///
/// Dropping it drops the nodes, each of which stops and deletes itself; each node's watchdog does
/// the same if the test process dies first.
#[derive(Debug)]
pub struct PrivateCluster {
    nodes: Vec<PrivateRabbit>,
    /// Which nodes' brokers were stopped (`stop_app` or `stop_node`), so that queries go to a
    /// running one first instead of waiting for a stopped one to fail.
    stopped: Vec<bool>,
}

impl PrivateCluster {
    /// How many nodes the cluster has.
    pub const NODES: usize = 3;

    /// Boots three nodes, joins the second and third to the first, and waits until every node
    /// reports all three running.
    pub async fn start() -> anyhow::Result<PrivateCluster> {
        require_root("a private RabbitMQ cluster")?;
        let (a, b, c) = tokio::try_join!(
            PrivateRabbit::start(),
            PrivateRabbit::start(),
            PrivateRabbit::start()
        )?;
        let mut cluster = PrivateCluster {
            nodes: vec![a, b, c],
            stopped: vec![false; Self::NODES],
        };
        let seed = cluster.nodes[0].node.clone();
        for node in &mut cluster.nodes[1..] {
            node.stop_app().await?;
            node.ctl(&["join_cluster", &seed])
                .await
                .with_context(|| format!("joining {} to {seed}", node.node))?;
            node.start_app().await?;
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while cluster.running_nodes().await? < Self::NODES {
            if Instant::now() > deadline {
                bail!(
                    "the cluster of {seed} did not report {} running nodes",
                    Self::NODES
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(cluster)
    }

    /// Node `i` (0, 1 or 2).
    pub fn node(&self, i: usize) -> &PrivateRabbit {
        &self.nodes[i]
    }

    /// Which node has this Erlang node name.
    pub fn index_of(&self, node: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.node == node)
    }

    /// Node `i`'s AMQP URL, `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Every node's AMQP URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(PrivateRabbit::url).collect()
    }

    /// All three URLs separated by commas, the form `HERALD_AMQP_URL` takes for a cluster.
    pub fn combined_url(&self) -> String {
        self.urls().join(",")
    }

    /// `rabbitmqctl stop_app` on node `i`: it closes its connections and stops listening.
    pub async fn stop_app(&mut self, i: usize) -> anyhow::Result<()> {
        self.stopped[i] = true;
        self.nodes[i].stop_app().await
    }

    /// `rabbitmqctl start_app` on node `i`, then waits until it accepts AMQP connections.
    pub async fn start_app(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].start_app().await?;
        self.stopped[i] = false;
        Ok(())
    }

    /// Stops node `i`'s Erlang VM; it stays a member of the cluster.
    pub async fn stop_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.stopped[i] = true;
        self.nodes[i].stop_node().await
    }

    /// Boots node `i` again; it rejoins the cluster and its quorum queue members catch up.
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].start_node().await?;
        self.stopped[i] = false;
        Ok(())
    }

    /// Runs a read-only CLI command (`rabbitmqctl`, `rabbitmq-queues`, …) against the first node
    /// that answers, running nodes first, so it works whichever node is down.
    pub async fn query(&self, tool: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut failures = Vec::new();
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by_key(|i| self.stopped[*i]);
        for node in order.into_iter().map(|i| &self.nodes[i]) {
            match node.ctl_output(tool, args).await {
                Ok(out) => return Ok(out),
                Err(e) => failures.push(format!("{e:#}")),
            }
        }
        bail!(
            "no node answered `{tool} {}`: {}",
            args.join(" "),
            failures.join("; ")
        )
    }

    /// The node leading quorum queue `queue` in vhost `/`.
    pub async fn queue_leader(&self, queue: &str) -> anyhow::Result<usize> {
        let rows = self.queue_info(queue, "leader").await?;
        self.index_of(rows.trim())
            .with_context(|| format!("{queue}'s leader {rows:?} is none of the cluster's nodes"))
    }

    /// The nodes on which quorum queue `queue` has a running member.
    pub async fn queue_members_online(&self, queue: &str) -> anyhow::Result<Vec<usize>> {
        let online = self.queue_info(queue, "online").await?;
        Ok(self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| node_list_contains(&online, &n.node))
            .map(|(i, _)| i)
            .collect())
    }

    /// The client connections open on the cluster: each one's name (as the client gave it) and
    /// the node it is connected to.
    pub async fn connections(&self) -> anyhow::Result<Vec<(String, usize)>> {
        let out = self
            .query(
                "rabbitmqctl",
                &[
                    "list_connections",
                    "--no-table-headers",
                    "client_properties",
                    "port",
                ],
            )
            .await?;
        let mut found = Vec::new();
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let (properties, port) = line
                .rsplit_once('\t')
                .with_context(|| format!("unexpected list_connections line {line:?}"))?;
            let port: u16 = port.trim().parse()?;
            let Some(node) = self.nodes.iter().position(|n| n.port == port) else {
                continue;
            };
            found.push((connection_name(properties).unwrap_or_default(), node));
        }
        Ok(found)
    }

    /// How many nodes the first node that answers reports running.
    async fn running_nodes(&self) -> anyhow::Result<usize> {
        let status = self
            .query("rabbitmqctl", &["cluster_status", "--formatter", "json"])
            .await?;
        let running = status
            .split_once("\"running_nodes\":[")
            .and_then(|(_, rest)| rest.split_once(']'))
            .map_or("", |(list, _)| list);
        Ok(self
            .nodes
            .iter()
            .filter(|n| node_list_contains(running, &n.node))
            .count())
    }

    /// One `list_queues` column for `queue`.
    async fn queue_info(&self, queue: &str, column: &str) -> anyhow::Result<String> {
        let out = self
            .query(
                "rabbitmqctl",
                &["list_queues", "--no-table-headers", "name", column],
            )
            .await?;
        out.lines()
            .find_map(|line| {
                let (name, value) = line.split_once('\t')?;
                (name == queue).then(|| value.to_owned())
            })
            .with_context(|| format!("queue {queue} not found in {out:?}"))
    }
}

impl Drop for PrivateCluster {
    /// Stops the nodes at the same time (each [`PrivateRabbit`] drop waits for its node).
    fn drop(&mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        std::thread::scope(|scope| {
            for node in nodes {
                scope.spawn(move || drop(node));
            }
        });
    }
}

/// Whether a printed list of Erlang node names holds `node` as a whole name.
fn node_list_contains(list: &str, node: &str) -> bool {
    list.split(|c: char| !(c.is_alphanumeric() || "-_@.".contains(c)))
        .any(|word| word == node)
}

/// The `connection_name` in a printed `client_properties` table.
fn connection_name(properties: &str) -> Option<String> {
    let rest = &properties[properties.find("\"connection_name\"")?..];
    let value = rest.split(",\"").nth(1)?;
    Some(value.split('"').next()?.to_owned())
}

/// A PostgreSQL 15 server of our own on 127.0.0.1:`port`, trust authentication for `postgres`,
/// `fsync=off`, its data directory and socket in a temporary directory.
#[derive(Debug)]
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    running: bool,
    watchdog: Option<Child>,
}

impl PrivatePostgres {
    /// Creates a cluster with `initdb` and starts it; on a port taken meanwhile, on another one.
    pub async fn start() -> anyhow::Result<PrivatePostgres> {
        require_root("a private PostgreSQL server")?;
        let mut failure = None;
        for _ in 0..START_ATTEMPTS {
            match Self::start_once().await {
                Ok(pg) => return Ok(pg),
                Err(e) => failure = Some(e),
            }
        }
        Err(failure.expect("at least one attempt"))
    }

    async fn start_once() -> anyhow::Result<PrivatePostgres> {
        let port = free_port(&NEXT_PG_PORT, 5442, 5499, |p| [p, p])?;
        let dir = temp_dir("herald-pg")?;
        chown(&dir, "postgres")?;
        let mut pg = PrivatePostgres {
            port,
            dir,
            running: false,
            watchdog: None,
        };
        pg.watchdog = Some(watchdog(&format!(
            "runuser -u postgres -- {PG_BIN}/pg_ctl -D {dir}/data -m immediate stop \
             >/dev/null 2>&1; rm -rf {dir}",
            dir = pg.dir.display(),
        ))?);
        let data = pg.data().display().to_string();
        run(
            "runuser",
            [
                "-u",
                "postgres",
                "--",
                &format!("{PG_BIN}/initdb"),
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
            .map(String::from)
            .to_vec(),
        )
        .await?;
        pg.start_server().await?;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub async fn start_server(&mut self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        let result = self
            .pg_ctl(&[
                "-l",
                &self.dir.join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ])
            .await;
        if let Err(e) = result {
            bail!("{e:#}\n{}", tail(&self.dir.join("server.log")));
        }
        self.running = true;
        Ok(())
    }

    /// Stops the server. `mode` is `fast` (disconnect clients, clean shutdown) or `immediate`
    /// (as after a crash: no shutdown checkpoint, recovery on the next start).
    pub async fn stop_server(&mut self, mode: &str) -> anyhow::Result<()> {
        self.pg_ctl(&["-m", mode, "-w", "-t", "60", "stop"]).await?;
        self.running = false;
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    async fn pg_ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut full = vec![
            "-u".to_owned(),
            "postgres".to_owned(),
            "--".to_owned(),
            format!("{PG_BIN}/pg_ctl"),
            "-D".to_owned(),
            self.data().display().to_string(),
        ];
        full.extend(args.iter().map(|a| (*a).to_owned()));
        run("runuser", full).await
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "-D"])
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        stop_watchdog(self.watchdog.take());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn require_root(what: &str) -> anyhow::Result<()> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .context("running id -u")?;
    if String::from_utf8_lossy(&out.stdout).trim() != "0" {
        bail!("{what} needs root (it runs as a service user with runuser); run the tests as root");
    }
    Ok(())
}

/// A port in `low..=high` whose `ports(p)` are all free on 127.0.0.1 right now.
fn free_port(
    next: &AtomicU16,
    low: u16,
    high: u16,
    ports: impl Fn(u16) -> [u16; 2],
) -> anyhow::Result<u16> {
    let span = high - low + 1;
    // Start where this process's id points, so concurrent test runs spread over the range.
    let _ = next.compare_exchange(
        0,
        u16::try_from(std::process::id() % u32::from(span)).unwrap_or(0) + 1,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = next.fetch_add(1, Ordering::Relaxed) % span;
        let candidate = low + offset;
        if ports(candidate)
            .iter()
            .all(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok())
        {
            return Ok(candidate);
        }
    }
    bail!("no free port between {low} and {high} on 127.0.0.1")
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &(Ipv4Addr::LOCALHOST, port).into(),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn temp_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn chown(dir: &Path, user: &str) -> anyhow::Result<()> {
    let status = Command::new("chown")
        .args(["-R", &format!("{user}:{user}")])
        .arg(dir)
        .status()
        .context("running chown")?;
    if !status.success() {
        bail!("chown {user} {} failed ({status})", dir.display());
    }
    Ok(())
}

/// Runs a command to completion off the async threads; a failure carries its output.
async fn run(program: &str, args: Vec<String>) -> anyhow::Result<()> {
    run_output(program, args).await.map(drop)
}

/// Like [`run`], returning what the command printed on its standard output.
async fn run_output(program: &str, args: Vec<String>) -> anyhow::Result<String> {
    let program = program.to_owned();
    let shown = format!("{program} {}", args.join(" "));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
    })
    .await
    .context("the command task panicked")?
    .with_context(|| format!("could not run `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Starts `sh -c` that waits for this process to end and then runs `cleanup`; in its own
/// process group, so a Ctrl-C aimed at the tests does not take it down first.
fn watchdog(cleanup: &str) -> anyhow::Result<Child> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {cleanup}",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("could not start the cleanup watchdog")
}

fn stop_watchdog(watchdog: Option<Child>) {
    if let Some(mut watchdog) = watchdog {
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }
}

/// SIGKILLs the process group `child` leads (the node and everything it started).
fn kill_group(child: &Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn wait_or_kill(child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => break,
            Ok(None) if Instant::now() > deadline => {
                kill_group(child);
                let _ = child.wait();
                break;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
