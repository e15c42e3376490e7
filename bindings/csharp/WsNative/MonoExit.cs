// At process exit: close what is open (peers see 1001) and end wsnative's threads with
// wsn_shutdown. Mono needs this: once a callback has run on a wsnative thread Mono counts it as
// its own, and at exit it waits for every such thread to stop. Set WSNATIVE_EXIT_SHUTDOWN=0 to
// leave the process exit alone.
using System;
using System.Threading;

namespace WsNative.Native
{
    internal static class MonoExit
    {
        private static int s_hooked;

        internal static bool IsMono => Type.GetType("Mono.Runtime") != null;

        internal static void Ensure()
        {
            if (Volatile.Read(ref s_hooked) != 0 || Interlocked.Exchange(ref s_hooked, 1) != 0) return;
            if (Environment.GetEnvironmentVariable("WSNATIVE_EXIT_SHUTDOWN") == "0") return;
            AppDomain.CurrentDomain.ProcessExit += OnExit;
        }

        private static void OnExit(object sender, EventArgs e)
        {
            try
            {
                NativeMethods.wsn_shutdown(500);
            }
            catch (Exception ex)
            {
                System.Diagnostics.Trace.WriteLine("wsnative: shutdown at exit failed: " + ex);
            }
        }
    }
}
