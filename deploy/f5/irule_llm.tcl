# irule_llm -- ask the llmsched scheduler which LLM pool member serves each HTTP request.
#
# Compatible with the original f5devcentral/llm-inference-lb iRule (docs/F5-irule/irule_llm_*.irule): the
# same variables and defaults, the same request bytes (HTTP/1.0, no Host header, Connection: close), the same
# answers (200 "none" -> default pool, 200 "fallback" -> fallback pool, 200 "ip:port" -> that member) and the
# same per-virtual-server caching with call_interval_ms. Differences, all on the safe side:
#   * the sideband connection is closed on every path (the original leaked it unless send failed);
#   * a 200 body that is neither none/fallback nor an address:port of a member BIG-IP offered is treated
#     as "none" (the original passed e.g. an HTML page to `pool ... member` -> Tcl error, connection reset);
#   * connect and send have a timeout too (side_timeout_ms), not only recv;
#   * IPv6 scheduler and LLM members work (sideband destinations use "addr.port" for IPv6);
#   * a cached "fallback" answer is reused as fallback (the original sent it to the default pool);
#   * one file: set `timing 1` to log the scheduler round trip (the original shipped two files for that).
# Opt-in (off by default, and then the request bytes are the original's): `prefix_hints 1` adds the request
# body's prefix fingerprints and its model name to the JSON, for cache-aware routing (deploy/f5/README.md).
#
# This variant needs EXACTLY ONE active member in the scheduler pool, like the original. With several
# scheduler replicas use irule_llm_multi.tcl instead. Either file must be saved as /Common/irule_llm,
# because it calls its own procs as /Common/irule_llm::<proc>. Install guide: deploy/f5/README.md.

when HTTP_REQUEST {
    # ---- edit per deployment (names and defaults of the original) ------------------------------------
    set debug 0                                 ;# 1: log local0.debug traces
    set timing 0                                ;# 1: log the scheduler round trip at local0.info
    set partition "Common"                      ;# sent as "partition" in the JSON
    set pool_tblb_sched "pool_tblb_sched"       ;# pool whose single active member is the scheduler API
    set pool_backend_llm "Pool_vllm"            ;# LLM pool (also its name in the JSON)
    set pool_fallback_llm "Pool_fallback_vllm"  ;# used when the scheduler answers "fallback"
    set sched_uri "/scheduler/select"
    set side_timeout_ms "500"                   ;# budget for each of connect, send and recv
    set call_interval_ms "1"                    ;# minimum gap between two scheduler calls per virtual server
    set prefix_hints 0                          ;# 1: send the body's prefix fingerprints and model (opt-in)
    set prefix_body_cap "32768"                 ;# bytes of the body read for them (at most 32768 are used)
    # ------------------------------------------------------------------------------------------------------

    set llm_collecting 0
    if { $prefix_hints } {
        set collect_len [call /Common/irule_llm::collect_length [HTTP::header Content-Length] [HTTP::header exists Transfer-Encoding] [HTTP::header exists Expect] $prefix_body_cap]
        if { $collect_len > 0 && [catch { HTTP::collect $collect_len }] == 0 } {
            # The decision waits for the first bytes of the body: HTTP_REQUEST_DATA makes it.
            set llm_collecting 1
            return
        }
        if { $debug } { log local0.debug "llm: no prefix hint for this request (no fixed-length body to read)" }
    }
    call /Common/irule_llm::schedule "" "" $debug $timing $partition $pool_tblb_sched $pool_backend_llm $pool_fallback_llm $sched_uri $side_timeout_ms $call_interval_ms
}

when HTTP_REQUEST_DATA {
    # Fires for our HTTP::collect only (llm_collecting), never for a collect of another iRule.
    if { [info exists llm_collecting] && $llm_collecting } {
        set llm_collecting 0
        set body [HTTP::payload]
        set prefix [call /Common/irule_llm::prefix_fingerprints $body $prefix_body_cap]
        set model [call /Common/irule_llm::body_model $body]
        unset body
        call /Common/irule_llm::schedule $prefix $model $debug $timing $partition $pool_tblb_sched $pool_backend_llm $pool_fallback_llm $sched_uri $side_timeout_ms $call_interval_ms
        HTTP::release
    }
}

# One scheduling decision: ask the scheduler (or reuse the virtual server's last answer) and apply it.
# `prefix` is the JSON array body of fingerprints ("" = none) and `model` the body's model ("" = none); a
# request with a prefix is always asked, because another prompt's answer says nothing about this prompt.
proc schedule { prefix model debug timing partition sched_pool backend_pool fallback_pool sched_uri timeout_ms interval_ms } {
    set vs [virtual name]
    set now [clock clicks -milliseconds]
    if { $prefix eq "" } {
        set last_call [table lookup -notouch "last_call_time_$vs"]
        if { $last_call ne "" && ($now - $last_call) < $interval_ms } {
            # A call for this virtual server happened moments ago: reuse its answer instead of asking again.
            set cached [table lookup -notouch "llm_nexthop_$vs"]
            if { $debug } { log local0.debug "llm: reusing cached answer '$cached' for $vs" }
            call /Common/irule_llm::select_pool $cached $backend_pool $fallback_pool
            return
        }
    }
    table set "last_call_time_$vs" $now 60

    set schedulers [call /Common/irule_llm::schedulers $sched_pool $debug]
    if { [llength $schedulers] == 0 } {
        # No usable scheduler: the request goes to the virtual server's default pool, BIG-IP balances it.
        return
    }
    set candidates [call /Common/irule_llm::member_strings [active_members -list $backend_pool]]
    if { [llength $candidates] == 0 } {
        if { $debug } { log local0.debug "llm: no active member in $backend_pool" }
        return
    }
    set payload [call /Common/irule_llm::with_hints [call /Common/irule_llm::build_sched_payload $backend_pool $partition $candidates] $prefix $model]
    set started [clock clicks -milliseconds]
    set response ""
    foreach sched $schedulers {
        set response [call /Common/irule_llm::http_req $sched $sched_uri $payload $timeout_ms $debug]
        if { [call /Common/irule_llm::http_status $response] ne "" } {
            break
        }
        if { $debug } { log local0.debug "llm: scheduler $sched did not answer" }
    }
    set answer [call /Common/irule_llm::decide $response $candidates $debug]
    table set "llm_nexthop_$vs" $answer 60
    call /Common/irule_llm::select_pool $answer $backend_pool $fallback_pool
    if { $timing } {
        set total_duration [expr { [clock clicks -milliseconds] - $started }]
        log local0.info "Scheduler total duration: ${total_duration}ms (from connection to pool selection)"
    }
}

# The sideband destinations to try, in order: the single active scheduler, or none (see split_scheduler).
proc schedulers { sched_pool debug } {
    set sched [call /Common/irule_llm::split_scheduler $sched_pool $debug]
    if { $sched eq "" } {
        return [list]
    }
    return [list $sched]
}

# The scheduler's sideband destination, or "" unless exactly one scheduler member is active (as the original).
proc split_scheduler { sched_pool debug } {
    set count [active_members $sched_pool]
    if { $count != 1 } {
        if { $debug } { log local0.debug "llm: $count active scheduler members in $sched_pool, need exactly 1 (see irule_llm_multi)" }
        return ""
    }
    return [call /Common/irule_llm::sched_destination [lindex [active_members -list $sched_pool] 0]]
}

# "addr port" (an active_members -list entry) -> sideband destination: "IPv4:port" or "IPv6.port".
proc sched_destination { member } {
    set addr [lindex $member 0]
    set port [lindex $member 1]
    if { [string first ":" $addr] >= 0 } {
        return "$addr.$port"
    }
    return "$addr:$port"
}

# active_members -list output ({addr port} ...) -> the "addr:port" strings the scheduler expects.
proc member_strings { members } {
    set out [list]
    foreach member $members {
        lappend out "[lindex $member 0]:[lindex $member 1]"
    }
    return $out
}

# The JSON body, built exactly like the original's (no spaces, no model field).
proc build_sched_payload { pool_name partition candidates } {
    set quoted [list]
    foreach candidate $candidates {
        lappend quoted "\"$candidate\""
    }
    return [format {{"pool_name":"%s","partition":"%s","members":[%s]}} $pool_name $partition [join $quoted ","]]
}

# The request bytes, exactly as the original sends them: HTTP/1.0, no Host header, Connection: close.
proc build_request { uri payload } {
    return "POST $uri HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: [string length $payload]\r\nConnection: close\r\n\r\n$payload"
}

proc http_req { dest uri payload timeout_ms debug } {
    return [call /Common/irule_llm::request $dest [call /Common/irule_llm::build_request $uri $payload] $timeout_ms $debug]
}

# One sideband exchange; returns whatever was received ("" on failure). The connection is closed on every path.
proc request { dest data timeout_ms debug } {
    if { [catch { connect -protocol TCP -timeout $timeout_ms -idle 1 -status conn_status $dest } conn] || $conn eq "" } {
        if { $debug } { log local0.debug "llm: connect to $dest failed" }
        return ""
    }
    set response ""
    if { [catch { send -timeout $timeout_ms -status send_status $conn $data } sent] == 0
         && [info exists send_status] && $send_status eq "sent" && $sent == [string length $data] } {
        if { [catch { recv -timeout $timeout_ms -status recv_status 1000 $conn } response] } {
            set response ""
        }
        if { $debug } { log local0.debug "llm: received [string length $response] bytes from $dest" }
    } elseif { $debug } {
        log local0.debug "llm: send to $dest failed"
    }
    catch { close $conn }
    return $response
}

# The status code of a raw HTTP response (2nd token of the first line), "" when no complete header arrived.
proc http_status { response } {
    set split_at [string first "\r\n\r\n" $response]
    if { $split_at < 0 } {
        return ""
    }
    set status_line [lindex [split [string range $response 0 [expr { $split_at - 1 }]] "\r\n"] 0]
    return [lindex [split $status_line " "] 1]
}

# The original's parsing: returns {nexthop status}: {0 0} default pool, {0 1} fallback pool, {addr:port 200}.
proc parse_response { response } {
    if { [call /Common/irule_llm::http_status $response] ne "200" } {
        return [list 0 0]
    }
    set body [string trim [string range $response [expr { [string first "\r\n\r\n" $response] + 4 }] end]]
    if { $body eq "none" } {
        return [list 0 0]
    }
    if { $body eq "fallback" } {
        return [list 0 1]
    }
    if { ![call /Common/irule_llm::looks_like_member $body] } {
        # e.g. request_has_no_model_name, or an error page from something that is not the scheduler.
        return [list 0 0]
    }
    return [list $body 200]
}

# True for "IPv4[%rd]:port" and "IPv6[%rd]:port" with a port in 1..65535.
proc looks_like_member { text } {
    if { ![regexp {^(([0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)(%[0-9]{1,5})?:([0-9]{1,5})$} $text -> addr - - port] } {
        return 0
    }
    # scan, not expr on the raw digits: Tcl reads a leading 0 as octal ("08000" would raise an error).
    scan $port %d port
    return [expr { $port >= 1 && $port <= 65535 }]
}

# What to do with a scheduler response: a member of `candidates`, "fallback", or 0 (default pool).
proc decide { response candidates debug } {
    set parsed [call /Common/irule_llm::parse_response $response]
    set nexthop [lindex $parsed 0]
    if { $nexthop ne "0" } {
        if { [lsearch -exact $candidates $nexthop] >= 0 } {
            return $nexthop
        }
        # Never pin to something BIG-IP did not offer: `pool ... member` would fail on it.
        if { $debug } { log local0.debug "llm: scheduler answered $nexthop, not an active member" }
        return 0
    }
    if { [lindex $parsed 1] == 1 } {
        return "fallback"
    }
    if { $debug } { log local0.debug "llm: scheduler answered none or failed, default load balancing" }
    return 0
}

# Apply an answer of `decide` (or its cached copy).
proc select_pool { answer backend_pool fallback_pool } {
    if { $answer eq "fallback" } {
        pool $fallback_pool
    } elseif { $answer ne "" && $answer ne "0" } {
        set sep [string last ":" $answer]
        pool $backend_pool member [string range $answer 0 [expr { $sep - 1 }]] [string range $answer [expr { $sep + 1 }] end]
    } else {
        pool $backend_pool
    }
}

# ---- prefix hints (prefix_hints 1; wire contract in deploy/f5/README.md) ------------------------------------
# How many body bytes to collect: min(Content-Length, cap, 32768), or 0 = no hint. Only a body with a plain
# Content-Length is read: a chunked body, one announced with "Expect: 100-continue" (the client waits for the
# server before sending it) and a missing or unreadable length are passed on untouched.
proc collect_length { content_length chunked expect cap } {
    if { $chunked || $expect || ![string is digit -strict $content_length] || [string length $content_length] > 12 } {
        return 0
    }
    if { ![string is digit -strict $cap] || [string length $cap] > 12 } {
        return 0
    }
    # scan, not expr on the raw digits: Tcl reads a leading 0 as octal.
    scan $content_length %d length
    scan $cap %d limit
    if { $limit > 32768 } {
        set limit 32768
    }
    if { $length < $limit } {
        return $length
    }
    return $limit
}

# The chained fingerprints of the body's first min(cap, 32768) bytes, as the inside of a JSON array:
# block i (512 bytes) gives sha1(digest of block i-1 . block i), so each one covers every byte before it; the
# first 8 bytes of each 20-byte digest go out as 16 lowercase hex digits. A trailing partial block is not sent (as an
# engine's prefix cache, which only shares full blocks). "" when the body is shorter than one block.
proc prefix_fingerprints { body cap } {
    set usable [string length $body]
    if { [string is digit -strict $cap] && [string length $cap] <= 12 } {
        scan $cap %d limit
        if { $limit < $usable } {
            set usable $limit
        }
    }
    set count [expr { $usable / 512 }]
    if { $count > 64 } {
        set count 64
    }
    set out [list]
    set digest ""
    for { set i 0 } { $i < $count } { incr i } {
        set digest [sha1 "$digest[string range $body [expr { $i * 512 }] [expr { $i * 512 + 511 }]]"]
        binary scan $digest H16 hex
        lappend out "\"$hex\""
    }
    return [join $out ","]
}

# The value of the body's first "model" key when it is a plain model name (letters, digits and ._:/@+-, at
# most 256 characters); "" otherwise. Anything else would need JSON escaping, so it is left out.
proc body_model { body } {
    # string first bounds the regexp to a few hundred bytes instead of the whole collected body.
    set at [string first {"model"} $body]
    if { $at < 0 || ![regexp {^"model"[ \t\r\n]*:[ \t\r\n]*"([^"\\]*)"} [string range $body $at [expr { $at + 300 }]] -> model] } {
        return ""
    }
    if { [string length $model] > 256 || ![regexp {^[A-Za-z0-9._:/@+-]+$} $model] } {
        return ""
    }
    return $model
}

# The select JSON with the optional "model" and "prefix" fields; without hints the payload is left as built.
proc with_hints { payload prefix model } {
    if { $model eq "" && $prefix eq "" } {
        return $payload
    }
    set extra ""
    if { $model ne "" } {
        append extra ",\"model\":\"$model\""
    }
    if { $prefix ne "" } {
        append extra ",\"prefix\":\[$prefix\]"
    }
    return "[string range $payload 0 end-1]$extra\}"
}
