// The native library's log records (wsn_log_set_callback): an event on a static class, and
// System.Diagnostics.Trace. Off by default: the library makes no record until Enable.
using System;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Threading;
using WsNative.Native;
using static WsNative.Native.NativeMethods;

namespace WsNative
{
    /// <summary>The level of a log record (wsn_log_level).</summary>
    public enum WsLogLevel
    {
        /// <summary>No records.</summary>
        Off = 0,
        /// <summary>Failures the library could not handle.</summary>
        Error = 1,
        /// <summary>Timeouts, protocol errors (with their position), limits hit.</summary>
        Warning = 2,
        /// <summary>Refused handshakes and why, TLS and connect failures, connections that ended with an error.</summary>
        Info = 3,
        /// <summary>Clean closes and other details.</summary>
        Debug = 4,
        /// <summary>Everything, including the TLS library's traces.</summary>
        Trace = 5,
    }

    /// <summary>One log record of the native library.</summary>
    public sealed class WsLogRecord : EventArgs
    {
        internal WsLogRecord(WsLogLevel level, string target, string message, ulong connectionId)
        {
            Level = level; Target = target; Message = message; ConnectionId = connectionId;
        }

        /// <summary>The record's level.</summary>
        public WsLogLevel Level { get; }
        /// <summary>The part that logged: "wsnative::server", "wsnative::client", "wsnative::connection", "rustls::...".</summary>
        public string Target { get; }
        /// <summary>One line of text.</summary>
        public string Message { get; }
        /// <summary>The connection's <see cref="WsConnection.Id"/>, or 0 when the record is about no one connection.</summary>
        public ulong ConnectionId { get; }

        /// <inheritdoc/>
        public override string ToString() =>
            Level + " " + Target + (ConnectionId != 0 ? " conn=" + ConnectionId : "") + ": " + Message;
    }

    /// <summary>
    /// The native library's log. Off by default; <see cref="Enable"/> turns it on up to a level.
    /// Each record raises <see cref="Record"/> and is written to <see cref="System.Diagnostics.Trace"/>
    /// (TraceError, TraceWarning, TraceInformation) unless <see cref="WriteToTrace"/> is false.
    /// Records arrive on the library's threads (mostly its I/O threads): handlers must be quick,
    /// must not block, and must not call Enable or Disable (which wait for records in flight).
    /// </summary>
    public static class WsLog
    {
        // Kept for the life of the process: native code may call it until it is replaced.
        private static readonly LogCallback s_callback = OnRecord;
        private static readonly object s_lock = new object();
        private static int s_exitHooked;

        /// <summary>Raised for each record, on the thread that logged it.</summary>
        public static event EventHandler<WsLogRecord> Record;

        /// <summary>Whether records also go to System.Diagnostics.Trace (default true).</summary>
        public static bool WriteToTrace { get; set; } = true;

        /// <summary>Turns the log on, up to <paramref name="maxLevel"/> (Off turns it off).</summary>
        public static void Enable(WsLogLevel maxLevel = WsLogLevel.Info)
        {
            if (maxLevel < WsLogLevel.Off || maxLevel > WsLogLevel.Trace) throw new ArgumentOutOfRangeException(nameof(maxLevel));
            lock (s_lock)
            {
                MonoExit.Ensure();
                if (Interlocked.Exchange(ref s_exitHooked, 1) == 0)
                    AppDomain.CurrentDomain.ProcessExit += (s, e) => { try { Disable(); } catch (Exception) { } };
                Status.Check(wsn_log_set_callback(maxLevel == WsLogLevel.Off ? null : s_callback, (uint)maxLevel, IntPtr.Zero));
            }
        }

        /// <summary>Turns the log off (the default): the library makes no record any more.
        /// When it returns, no record is being delivered.</summary>
        public static void Disable()
        {
            lock (s_lock) Status.Check(wsn_log_set_callback(null, 0, IntPtr.Zero));
        }

        private static void OnRecord(IntPtr userData, int level, IntPtr target, IntPtr message, ulong connId)
        {
            try
            {
                var r = new WsLogRecord((WsLogLevel)level, Utf8.FromPtr(target) ?? "", Utf8.FromPtr(message) ?? "", connId);
                Record?.Invoke(null, r);
                if (WriteToTrace)
                {
                    var text = "wsnative: " + r;
                    if (r.Level == WsLogLevel.Error) Trace.TraceError(text);
                    else if (r.Level == WsLogLevel.Warning) Trace.TraceWarning(text);
                    else Trace.TraceInformation(text);
                }
            }
            catch (Exception) { } // nothing may unwind into the library
        }
    }
}
