package wstransport

// ClientFrame builds a masked client frame for the package's external tests.
var ClientFrame = clientFrame
