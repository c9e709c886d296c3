# irule_llm (multi) -- like irule_llm.tcl, but works with SEVERAL active scheduler API replicas.
#
# The original iRule required exactly one active member in the scheduler pool, so a second scheduler replica
# switched scheduling off. This variant picks one active scheduler member at random for every call (random
# rather than a shared rotation counter: no extra table write per request, and the load still spreads
# evenly). If connecting, sending or receiving fails (no complete HTTP response), it tries the next active
# member once; if that fails too, the request goes to the default LLM pool with BIG-IP's own load balancing.
# An answered request (none, fallback, a 503 from a replica that is not ready) is not retried: the scheduler
# pool's /health monitor takes unready replicas out of rotation within one monitor interval.
#
# Everything else -- variables, defaults, request bytes, parsing, caching, logging -- is identical to
# irule_llm.tcl (see its header for the differences from the original). Save THIS file as /Common/irule_llm
# (instead of irule_llm.tcl, not next to it): it calls its own procs as /Common/irule_llm::<proc>.
# Install guide: deploy/f5/README.md.

when HTTP_REQUEST {
    # ---- edit per deployment (names and defaults of the original) ------------------------------------
    set debug 0                                 ;# 1: log local0.debug traces
    set timing 0                                ;# 1: log the scheduler round trip at local0.info
    set partition "Common"                      ;# sent as "partition" in the JSON
    set pool_tblb_sched "pool_tblb_sched"       ;# pool of the scheduler API replicas (one or more active)
    set pool_backend_llm "Pool_vllm"            ;# LLM pool (also its name in the JSON)
    set pool_fallback_llm "Pool_fallback_vllm"  ;# used when the scheduler answers "fallback"
    set sched_uri "/scheduler/select"
    set side_timeout_ms "500"                   ;# budget for each of connect, send and recv
    set call_interval_ms "1"                    ;# minimum gap between two scheduler calls per virtual server
    # ------------------------------------------------------------------------------------------------------

    set vs [virtual name]
    set now [clock clicks -milliseconds]
    set last_call [table lookup -notouch "last_call_time_$vs"]
    if { $last_call ne "" && ($now - $last_call) < $call_interval_ms } {
        # A call for this virtual server happened moments ago: reuse its answer instead of asking again.
        set cached [table lookup -notouch "llm_nexthop_$vs"]
        if { $debug } { log local0.debug "llm: reusing cached answer '$cached' for $vs" }
        call /Common/irule_llm::select_pool $cached $pool_backend_llm $pool_fallback_llm
        return
    }
    table set "last_call_time_$vs" $now 60

    set schedulers [call /Common/irule_llm::pick_schedulers [active_members -list $pool_tblb_sched]]
    if { [llength $schedulers] == 0 } {
        # No scheduler up: the request goes to the virtual server's default pool, BIG-IP balances it.
        if { $debug } { log local0.debug "llm: no active member in $pool_tblb_sched" }
        return
    }
    set candidates [call /Common/irule_llm::member_strings [active_members -list $pool_backend_llm]]
    if { [llength $candidates] == 0 } {
        if { $debug } { log local0.debug "llm: no active member in $pool_backend_llm" }
        return
    }
    set payload [call /Common/irule_llm::build_sched_payload $pool_backend_llm $partition $candidates]
    set started [clock clicks -milliseconds]
    set response ""
    foreach sched $schedulers {
        set response [call /Common/irule_llm::http_req $sched $sched_uri $payload $side_timeout_ms $debug]
        if { [call /Common/irule_llm::http_status $response] ne "" } {
            break
        }
        if { $debug } { log local0.debug "llm: scheduler $sched did not answer" }
    }
    set answer [call /Common/irule_llm::decide $response $candidates $debug]
    table set "llm_nexthop_$vs" $answer 60
    call /Common/irule_llm::select_pool $answer $pool_backend_llm $pool_fallback_llm
    if { $timing } {
        set total_duration [expr { [clock clicks -milliseconds] - $started }]
        log local0.info "Scheduler total duration: ${total_duration}ms (from connection to pool selection)"
    }
}

# Active scheduler members ({addr port} ...) -> the sideband destinations to try, in order: a random one
# first, then the next one (wrapping around) as the single retry. At most two, fewer when fewer are active.
proc pick_schedulers { members } {
    set count [llength $members]
    if { $count == 0 } {
        return [list]
    }
    set first [expr { int(rand() * $count) }]
    set out [list [call /Common/irule_llm::sched_destination [lindex $members $first]]]
    if { $count > 1 } {
        lappend out [call /Common/irule_llm::sched_destination [lindex $members [expr { ($first + 1) % $count }]]]
    }
    return $out
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
