/// A small SVG line chart: busbw (GB/s) against message size on a log2 axis.
enum BenchPlot {
    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    static func svg(series: [String: [(size: Double, busbw: Double)]], title: String) -> String {
        let width = 720.0, height = 420.0, left = 70.0, right = 180.0, top = 40.0, bottom = 50.0
        let points = series.values.flatMap { $0 }
        let xs = points.map { log2($0.size) }
        let minX = xs.min() ?? 0, maxX = max(xs.max() ?? 1, (xs.min() ?? 0) + 1)
        let maxY = max(points.map(\.busbw).max() ?? 1, 1e-9) * 1.1
        func x(_ size: Double) -> Double { left + (log2(size) - minX) / (maxX - minX) * (width - left - right) }
        func y(_ v: Double) -> Double { height - bottom - v / maxY * (height - top - bottom) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"24\" font-size=\"14\">\(escape(title))</text>\n"
        out += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let v = maxY * Double(i) / 4
            out += "<text x=\"\(left - 8)\" y=\"\(y(v) + 4)\" text-anchor=\"end\">\(format(v, 2))</text>\n"
        }
        var e = Int(minX.rounded(.up))
        while Double(e) <= maxX {
            let label = e >= 30 ? "\(1 << (e - 30))G" : e >= 20 ? "\(1 << (e - 20))M" : e >= 10 ? "\(1 << (e - 10))K" : "\(1 << e)"
            out += "<text x=\"\(x(Double(1 << e)))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(label)</text>\n"
            e += max(1, Int((maxX - minX) / 10))
        }
        out += "<text x=\"\((left + width - right) / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\">size (bytes)</text>\n"
        out += "<text x=\"16\" y=\"\(top + (height - top - bottom) / 2)\" transform=\"rotate(-90 16 \(top + (height - top - bottom) / 2))\" text-anchor=\"middle\">busbw (GB/s)</text>\n"
        for (i, name) in series.keys.sorted().enumerated() {
            let color = colors[i % colors.count]
            let line = series[name]!.sorted { $0.size < $1.size }.map { "\(x($0.size)),\(y($0.busbw))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(line)\"/>\n"
            out += "<text x=\"\(width - right + 10)\" y=\"\(top + 16 * Double(i + 1))\" fill=\"\(color)\">\(escape(name))</text>\n"
        }
        return out + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences("&", "&amp;").replacingOccurrences("<", "&lt;").replacingOccurrences(">", "&gt;")
    }
}

#if canImport(Glibc)
import Glibc
#endif

extension String {
    func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: Substring(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
