import Foundation
import Glibc

/// The controlling terminal in full-screen mode: the alternate screen, no cursor,
/// keys read one at a time without echo. `restore()` puts everything back, also
/// when petrel is ended by SIGTERM or SIGHUP.
final class Terminal {
    struct Size: Equatable {
        var columns: Int
        var rows: Int
    }

    /// The settings found at start, restored on exit (a global so a signal handler can reach it).
    nonisolated(unsafe) private static var saved: termios?

    /// Switches to full-screen mode; fails unless standard input and output are a terminal.
    init() throws {
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else {
            throw CLIError("top: needs a terminal (standard input and output); for scripts use `petrel stats --watch 1`")
        }
        var settings = termios()
        guard tcgetattr(STDIN_FILENO, &settings) == 0 else { throw CLIError("top: cannot read the terminal's settings") }
        Terminal.saved = settings
        // Keys arrive one by one, unechoed; Ctrl-C arrives as a key (0x03) so quitting is one path.
        settings.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        settings.c_iflag &= ~tcflag_t(IXON | ICRNL)
        withUnsafeMutableBytes(of: &settings.c_cc) { cc in
            cc[Int(VMIN)] = 0
            cc[Int(VTIME)] = 0
        }
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &settings)
        for signal in [SIGTERM, SIGHUP, SIGQUIT] {
            Glibc.signal(signal) { number in
                Terminal.restoreSaved()
                Glibc.signal(number, SIG_DFL)
                raise(number)
            }
        }
        Terminal.write("\u{1B}[?1049h\u{1B}[?25l\u{1B}[H\u{1B}[2J")  // alternate screen, hide cursor, clear
    }

    /// Leaves full-screen mode: the main screen, the cursor and the settings come back.
    func restore() {
        Terminal.restoreSaved()
    }

    private static func restoreSaved() {
        guard var settings = saved else { return }
        saved = nil
        write("\u{1B}[?25h\u{1B}[?1049l")  // show cursor, main screen
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &settings)
    }

    /// The window's size now (80x24 if the terminal does not say).
    var size: Size {
        var window = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &window) == 0, window.ws_col > 0, window.ws_row > 0 else {
            return Size(columns: 80, rows: 24)
        }
        return Size(columns: Int(window.ws_col), rows: Int(window.ws_row))
    }

    /// Waits up to `timeout` seconds for keys; returns those typed (empty on timeout).
    func keys(within timeout: Double) -> [UInt8] {
        var descriptor = pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(max(0, timeout) * 1000)) > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(STDIN_FILENO, &buffer, buffer.count)
        return count > 0 ? Array(buffer.prefix(count)) : []
    }

    /// Draws a whole frame: each line cut to the width, the rest of the screen cleared.
    func draw(_ lines: [String], size: Size) {
        var frame = "\u{1B}[H"
        for (index, line) in lines.prefix(size.rows).enumerated() {
            frame += String(line.prefix(size.columns)) + "\u{1B}[K" + (index < size.rows - 1 ? "\r\n" : "")
        }
        Terminal.write(frame + "\u{1B}[J")
    }

    private static func write(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { buffer in
            var sent = 0
            while sent < buffer.count {
                let n = Glibc.write(STDOUT_FILENO, buffer.baseAddress! + sent, buffer.count - sent)
                if n < 0, errno == EINTR { continue }
                if n <= 0 { return }
                sent += n
            }
        }
    }
}
