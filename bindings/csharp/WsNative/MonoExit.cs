// Mono only: wsnative's callback threads never exit, and once they have run a callback Mono
// counts them as its own threads. At exit Mono 6.8 then tries forever to suspend them while they
// wait in native code (100% CPU, the process never ends). So, on Mono, when the process exits we
// close what is open (wsn_shutdown) and end the process with _exit right after the
// ProcessExit handlers that registered before ours. CoreCLR is not affected and is left alone.
// The proper fix belongs in the core (see the binding's README: callback threads that end).
using System;
using System.Runtime.InteropServices;
using System.Threading;

namespace WsNative.Native
{
    internal static class MonoExit
    {
        private static int s_hooked;

        [DllImport("libc", EntryPoint = "_exit")]
        private static extern void _exit(int status);

        internal static bool IsMono => Type.GetType("Mono.Runtime") != null;

        internal static void Ensure()
        {
            if (Volatile.Read(ref s_hooked) != 0 || Interlocked.Exchange(ref s_hooked, 1) != 0) return;
            if (!IsMono || Environment.GetEnvironmentVariable("WSNATIVE_MONO_EXIT") == "0") return;
            AppDomain.CurrentDomain.ProcessExit += OnExit;
        }

        private static void OnExit(object sender, EventArgs e)
        {
            try
            {
                NativeMethods.wsn_shutdown(500);
                Console.Out.Flush();
                Console.Error.Flush();
            }
            catch { }
            _exit(Environment.ExitCode);
        }
    }
}
