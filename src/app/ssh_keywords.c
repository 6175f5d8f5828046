/* ssh_keywords — see ssh_keywords.h. */
#include "ssh_keywords.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* From ssh_config(5) of OpenSSH 9.2 (Debian), Host and Match left out (qqmgr
 * writes the Host block), plus the aliases ssh still accepts. */
const char *const ssh_keywords[] = {
    "AddKeysToAgent", "AddressFamily", "BatchMode", "BindAddress", "BindInterface", "CanonicalDomains",
    "CanonicalizeFallbackLocal", "CanonicalizeHostname", "CanonicalizeMaxDots", "CanonicalizePermittedCNAMEs",
    "CASignatureAlgorithms", "CertificateFile", "CheckHostIP", "Ciphers", "ClearAllForwardings",
    "Compression", "ConnectionAttempts", "ConnectTimeout", "ControlMaster", "ControlPath", "ControlPersist",
    "DynamicForward", "EnableEscapeCommandline", "EnableSSHKeysign", "EscapeChar", "ExitOnForwardFailure",
    "FingerprintHash", "ForkAfterAuthentication", "ForwardAgent", "ForwardX11", "ForwardX11Timeout",
    "ForwardX11Trusted", "GatewayPorts", "GlobalKnownHostsFile", "GSSAPIAuthentication",
    "GSSAPIClientIdentity", "GSSAPIDelegateCredentials", "GSSAPIKeyExchange", "GSSAPIRenewalForcesRekey",
    "GSSAPIServerIdentity", "GSSAPITrustDns", "GSSAPIKexAlgorithms", "HashKnownHosts",
    "HostbasedAcceptedAlgorithms", "HostbasedAuthentication", "HostKeyAlgorithms", "HostKeyAlias", "Hostname",
    "IdentitiesOnly", "IdentityAgent", "IdentityFile", "IgnoreUnknown", "Include", "IPQoS",
    "KbdInteractiveAuthentication", "KbdInteractiveDevices", "KexAlgorithms", "KnownHostsCommand",
    "LocalCommand", "LocalForward", "LogLevel", "LogVerbose", "MACs", "NoHostAuthenticationForLocalhost",
    "NumberOfPasswordPrompts", "PasswordAuthentication", "PermitLocalCommand", "PermitRemoteOpen",
    "PKCS11Provider", "Port", "PreferredAuthentications", "ProxyCommand", "ProxyJump", "ProxyUseFdpass",
    "PubkeyAcceptedAlgorithms", "PubkeyAuthentication", "RekeyLimit", "RemoteCommand", "RemoteForward",
    "RequestTTY", "RequiredRSASize", "RevokedHostKeys", "SecurityKeyProvider", "SendEnv",
    "ServerAliveCountMax", "ServerAliveInterval", "SessionType", "SetEnv", "StdinNull", "StreamLocalBindMask",
    "StreamLocalBindUnlink", "StrictHostKeyChecking", "SyslogFacility", "TCPKeepAlive", "Tunnel",
    "TunnelDevice", "UpdateHostKeys", "User", "UserKnownHostsFile", "VerifyHostKeyDNS", "VisualHostKey",
    "XAuthLocation", "ChallengeResponseAuthentication", "HostbasedKeyTypes", "PubkeyAcceptedKeyTypes",
    "IdentityFile2",
    NULL,
};

static int by_name(const void *a, const void *b)
{
    return strcasecmp(*(const char *const *)a, *(const char *const *)b);
}

/* Binary search in a copy sorted without regard to case (made on first use):
 * a config names the same few keywords for each of its VMs. */
const char *ssh_keyword(const char *name)
{
    static const char *sorted[sizeof ssh_keywords / sizeof *ssh_keywords];
    static size_t n;
    if (!n) {
        while (ssh_keywords[n]) {
            sorted[n] = ssh_keywords[n];
            n++;
        }
        qsort(sorted, n, sizeof *sorted, by_name);
    }
    /* the same key for VM after VM: the last hit first */
    static const char *last;
    if (last && strcmp(last, name) == 0)
        return last;
    const char *const *hit = bsearch(&name, sorted, n, sizeof *sorted, by_name);
    if (hit)
        last = *hit;
    return hit ? *hit : NULL;
}
