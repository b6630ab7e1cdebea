"""Workers on every core: one port, N supervised worker processes (``[process] workers``).

With ``workers = 1`` (the default) none of this runs: the daemon is one process. With more,
the main process opens every listener and supervises; the workers serve:

* :mod:`~wsdaemon.workers.start` checks the configuration and builds the supervisor;
* :mod:`~wsdaemon.workers.sockets`: the listening sockets the main process holds;
* :mod:`~wsdaemon.workers.supervisor`: spawning, restarts, signals, shutdown;
* :mod:`~wsdaemon.workers.readiness`: sd_notify for the whole set;
* :mod:`~wsdaemon.workers.slots` and :mod:`~wsdaemon.workers.backoff`: the bookkeeping;
* :mod:`~wsdaemon.workers.channel`: the messages between the main process and a worker;
* :mod:`~wsdaemon.workers.worker`: a worker, which is the single-process service itself.
"""
