import Foundation
import Petrel

// Request bodies read strictly: every field is checked for its JSON type in the
// operator's words ("must be an integer between 0 and 1000000"), unknown fields
// are refused by name, and the model's rules (`Vip.validate`) run last. Errors
// name the field's JSON path inside the body: `reals[0].address`.

/// A JSON value before any type is imposed on it.
enum JSONValue: Decodable, Sendable {
    case null
    case bool(Bool)
    case integer(Int)
    /// A number that is not an integer that fits in `Int`, as written.
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: Decoder) throws {
        if var list = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            while !list.isAtEnd { elements.append(try list.decode(JSONValue.self)) }
            self = .array(elements)
        } else if let object = try? decoder.container(keyedBy: AnyKey.self) {
            var fields: [String: JSONValue] = [:]
            for key in object.allKeys { fields[key.stringValue] = try object.decode(JSONValue.self, forKey: key) }
            self = .object(fields)
        } else {
            let value = try decoder.singleValueContainer()
            if value.decodeNil() {
                self = .null
            } else if let bool = try? value.decode(Bool.self) {
                self = .bool(bool)
            } else if let integer = try? value.decode(Int.self) {
                self = .integer(integer)
            } else if let number = try? value.decode(Double.self) {
                self = .number(number)
            } else {
                self = .string(try value.decode(String.self))
            }
        }
    }

    /// The value as a message shows it.
    var shown: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .integer(let value): "\(value)"
        case .number(let value): value == value.rounded() && abs(value) < 1e18 ? "\(Int64(value))" : "\(value)"
        case .string(let value): "\"\(value)\""
        case .array: "a list"
        case .object: "an object"
        }
    }
}

/// A JSON value with its path in the request body, read field by field.
struct BodyField {
    let value: JSONValue
    let path: FieldPath

    /// The body as a whole is called `body` in messages.
    func refuse(_ expected: String) -> PetrelError {
        if path.isRoot { return .invalid(field: "body", value: value.shown, expected: expected) }
        return PetrelError(ValidationIssue(path, value: value.shown, expected: expected))
    }

    /// An object whose keys are all among `keys`; `what` names it in messages ("a real").
    func object(_ what: String, keys: [String]) throws(PetrelError) -> BodyObject {
        guard case .object(let fields) = value else {
            throw refuse("must be \(what): a JSON object with the fields \(keys.joined(separator: ", "))")
        }
        if let unknown = fields.keys.filter({ !keys.contains($0) }).sorted().first {
            throw PetrelError(ValidationIssue(path.appending(unknown), value: nil,
                                              expected: "is not a field of \(what); expected \(keys.joined(separator: ", "))"))
        }
        return BodyObject(fields: fields, path: path)
    }

    func string(_ expected: String) throws(PetrelError) -> String {
        guard case .string(let text) = value else { throw refuse(expected) }
        return text
    }

    func integer(_ rule: IntegerRule) throws(PetrelError) -> Int {
        switch value {
        case .integer(let number):
            if let issue = rule.check(number, at: path) { throw PetrelError(issue) }
            return number
        case .number(let number) where number == number.rounded():
            throw refuse(rule.expected)  // a whole number too large for any field
        default:
            throw refuse(rule.expectedInteger)
        }
    }

    func address() throws(PetrelError) -> IPAddress {
        let expected = "must be an IPv4 or IPv6 address"
        guard let address = IPAddress(try string(expected)) else { throw refuse(expected) }
        return address
    }

    func list() throws(PetrelError) -> [BodyField] {
        guard case .array(let elements) = value else { throw refuse("must be a list") }
        return elements.enumerated().map { BodyField(value: $0.element, path: path.appending($0.offset)) }
    }
}

/// The fields of a checked object.
struct BodyObject {
    let fields: [String: JSONValue]
    let path: FieldPath

    /// The field, or nil when absent or null.
    func optional(_ key: String) -> BodyField? {
        guard let value = fields[key] else { return nil }
        if case .null = value { return nil }
        return BodyField(value: value, path: path.appending(key))
    }

    func required(_ key: String) throws(PetrelError) -> BodyField {
        guard let field = optional(key) else {
            throw PetrelError(ValidationIssue(path.appending(key), value: nil, expected: "is required"))
        }
        return field
    }
}

// MARK: - The documents the API accepts

/// Reads request bodies into model values; what the admin API uses for every body.
public enum RequestBody {
    static let realKeys = ["address", "weight", "encapsulation", "quic_server_id"]
    static let vipKeys = ["protocol", "address", "port", "flags", "reals", "source_routes"]
    static let sourceRouteKeys = ["prefix", "real"]

    /// Parses the body as JSON; the error names the body as a whole.
    static func json(_ body: Data) throws(PetrelError) -> BodyField {
        do {
            return BodyField(value: try JSONDecoder().decode(JSONValue.self, from: body), path: .root)
        } catch {
            throw PetrelError.invalid(field: "body", value: "", expected: "must be a JSON document (\(body.isEmpty ? "it is empty" : "it does not parse"))")
        }
    }

    /// `POST /v1/vips`: a whole VIP, checked by the model's rules with `ringSize`.
    public static func vip(_ body: Data, ringSize: Int?) throws(PetrelError) -> Vip {
        let vip = try readVip(try json(body))
        if let issue = vip.validate(ringSize: ringSize).first { throw PetrelError(issue) }
        return vip
    }

    /// `POST /v1/vips/.../reals`: one real for the VIP at `vipAddress`.
    public static func real(_ body: Data, vipAddress: IPAddress) throws(PetrelError) -> Real {
        let real = try readReal(try json(body))
        if let issue = real.validate(at: .root, vipAddress: vipAddress).first { throw PetrelError(issue) }
        return real
    }

    /// `PUT /v1/vips/.../reals/{address}/weight`: `{"weight": 3}`.
    public static func weight(_ body: Data) throws(PetrelError) -> UInt32 {
        let object = try json(body).object("a weight", keys: ["weight"])
        return UInt32(try object.required("weight").integer(Real.weightRule))
    }

    static func readReal(_ field: BodyField) throws(PetrelError) -> Real {
        let object = try field.object("a real", keys: realKeys)
        let address = try object.required("address").address()
        let weight = try object.optional("weight")?.integer(Real.weightRule)
        var encapsulation = Encapsulation.ipip
        if let field = object.optional("encapsulation") {
            let expected = "must be one of \(Encapsulation.allCases.map(\.rawValue).joined(separator: ", "))"
            guard let value = Encapsulation(rawValue: try field.string(expected)) else {
                throw field.refuse(expected)
            }
            encapsulation = value
        }
        let serverId = try object.optional("quic_server_id")?.integer(Real.quicServerIdRule)
        return Real(address: address, weight: weight.map(UInt32.init) ?? Real.defaultWeight,
                    encapsulation: encapsulation, quicServerId: serverId.map { UInt16($0) })
    }

    static func readVip(_ field: BodyField) throws(PetrelError) -> Vip {
        let object = try field.object("a VIP", keys: vipKeys)
        let protocolField = try object.required("protocol")
        let protocolExpected = "must be one of \(L4Protocol.allCases.map(\.rawValue).joined(separator: ", "))"
        guard let proto = L4Protocol(rawValue: try protocolField.string(protocolExpected)) else {
            throw protocolField.refuse(protocolExpected)
        }
        let address = try object.required("address").address()
        let port = try object.required("port").integer(VipKey.portRule)
        var flags = VipFlags()
        for element in try object.optional("flags")?.list() ?? [] {
            guard let flag = VipFlags(named: try element.string(VipFlags.expectedName)) else { throw element.refuse(VipFlags.expectedName) }
            flags.insert(flag)
        }
        var reals: [Real] = []
        for element in try object.optional("reals")?.list() ?? [] { reals.append(try readReal(element)) }
        var routes: [SourceRoute] = []
        for element in try object.optional("source_routes")?.list() ?? [] { routes.append(try readSourceRoute(element)) }
        return Vip(key: VipKey(address: address, port: UInt16(port), proto: proto), flags: flags, reals: reals, sourceRoutes: routes)
    }

    static func readSourceRoute(_ field: BodyField) throws(PetrelError) -> SourceRoute {
        let object = try field.object("a source route", keys: sourceRouteKeys)
        let prefixField = try object.required("prefix")
        let expected = "must be an IPv4 or IPv6 prefix in CIDR form (address/length, like 10.0.0.0/8)"
        guard let prefix = IPPrefix(try prefixField.string(expected)) else { throw prefixField.refuse(expected) }
        return SourceRoute(prefix: prefix, real: try object.required("real").address())
    }
}
