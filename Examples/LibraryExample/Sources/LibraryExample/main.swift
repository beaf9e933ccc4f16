import Petrel

// Load the data plane. With a pin path, a restarted process adopts the maps
// (connection tables, rings, counters) of the one before it.
let balancer = try LoadBalancer(limits: DataPlaneLimits(maxVips: 512, ringSize: 65537),
                                pinPath: "/sys/fs/bpf/petrel")

// How forwarded frames are addressed.
let eth0 = try NetworkInterface(named: "eth0")
try balancer.configureForwarding(ForwardingSettings(
    interfaceMAC: try eth0.mac(),
    nextHopMAC: MACAddress("02:00:00:00:02:01")!,
    mtu: try eth0.mtu()))

// The VIPs. apply() validates everything before writing anything (errors name
// the field), then writes only what changed.
let web = VipKey(address: IPAddress("198.18.100.1")!, port: 80, proto: .tcp)
try balancer.apply([
    Vip(key: web, reals: [
        Real(address: IPAddress("198.18.3.11")!, weight: 1),
        Real(address: IPAddress("198.18.3.12")!, weight: 2),
    ]),
])
try balancer.attach(interface: "eth0", mode: .native)

// Drain a real: no new flows, established ones stay.
try balancer.setWeight(0, real: IPAddress("198.18.3.11")!, vip: web)

// Where does a flow go, and why?
let flow = Flow(proto: .tcp, source: IPAddress("198.18.1.2")!, sourcePort: 40000,
                destination: web.address, destinationPort: 80)
print(try balancer.explain(flow))

// Counters, summed over the CPUs.
let stats = try balancer.stats()
print(stats[.forward], stats.vips[web] ?? Traffic())
