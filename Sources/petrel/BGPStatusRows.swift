import PetrelAdmin

extension BGPStatusDocument {
    /// The BGP lines of `petrel status`: one per session, one per VIP address.
    var rows: [(String, String)] {
        var rows = [("bgp", "AS \(localASN), router id \(routerID)\(draining ? ", draining (everything withdrawn)" : "")")]
        if let daemonError { rows.append(("bgp error", daemonError)) }
        for session in sessions { rows.append(("bgp session", "\(session.neighbor) AS \(session.asn): \(session.state)")) }
        for address in addresses {
            rows.append(("announcement", "\(address.address): \(address.state)\(address.reason.map { " (\($0))" } ?? "")"))
        }
        return rows
    }
}
