/// A place in a text file: 1-based line and column, as compilers print them.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    /// The path as the user gave it (relative paths stay relative, so messages match what they typed).
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// The start of a file, where problems with the file as a whole are reported.
    public static func start(of file: String) -> SourceLocation { SourceLocation(file: file, line: 1, column: 1) }

    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem found in an input file: where, and a sentence saying what is wrong and what was expected.
///
/// Every module that reads user files reports through this type, so all of Chorus prints
/// `FILE:LINE:COLUMN: message` the way compilers do and editors can jump to it.
public struct Diagnostic: Hashable, Sendable, CustomStringConvertible, Error {
    public var location: SourceLocation
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    public var description: String { "\(location): \(message)" }
}

/// Several problems found in one pass over an input, in file order.
public struct Diagnostics: Error, Sendable, CustomStringConvertible {
    public var items: [Diagnostic]

    public init(_ items: [Diagnostic]) { self.items = items }

    /// One diagnostic per line.
    public var description: String { items.map(\.description).joined(separator: "\n") }
}
