#!/usr/bin/env python3
# The measurement behind the README's "Why the wasm filter asks" (issue 12): the latency the global
# rate limit check adds at 1 and 16 connections when the wasm filter asks the service itself
# (global_rate_limit) and when Envoy's native envoy.filters.http.ratelimit asks it after the filter
# (descriptors from the x-mcp-tenant-id / x-mcp-tier headers the filter sets), each against the
# service in memory and on Redis, beside the edge without a global limit; one interleaved run.
# Not part of the test command. Needs what scripts/bench.sh needs, plus the built service:
#
#   cargo build -p mcp-edge-filter --target wasm32-wasip1 --release
#   cargo build -p mcp-edge-ratelimit -p xtask     # or --release and SERVICE_BIN=target/release/...
#   MCP_EDGE_GATEWAY_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
#     SECS=4 ROUNDS=3 python3 bench/global_limit.py
#
# Ports 18081 (the fixed-200 upstream of bench-setup), 18091/18092 (services), 16391 (Redis),
# 18180-18184 and 18911-18915 (the edges). Prints the median of the rounds per setup.
import yaml, json, copy, subprocess, time, os, sys, socket
W=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M=os.path.join(W,'.local/bench-global'); B=os.path.join(M,'setup')
SERVICE=os.environ.get('SERVICE_BIN', W+'/target/debug/mcp-edge-ratelimit')
os.makedirs(M, exist_ok=True)
subprocess.run([W+'/target/debug/xtask','bench-setup','--out',B,'--tokens','10'],cwd=W,check=True,capture_output=True)
base=yaml.safe_load(open(B+'/envoy-edge.yaml'))
env=dict(l.split('=',1) for l in open(B+'/bench.env').read().split('\n') if '=' in l)
procs=[]
def spawn(name, args):
    f=open(f'{M}/{name}.log','w'); p=subprocess.Popen(args,stdout=f,stderr=f,cwd=W); procs.append(p); return p
def wait_port(port, t=30):
    end=time.time()+t
    while time.time()<end:
        try: socket.create_connection(('127.0.0.1',port),0.2).close(); return
        except OSError: time.sleep(0.1)
    raise SystemExit(f'port {port} not up')
open(M+'/limits.yaml','w').write('domain: mcp-edge\ntiers:\n'+''.join(f'  {t}:\n    requests_per_minute: 4000000000\n' for t in ['free','pro','enterprise']))
def edge(name, port, admin, mode, rls_port):
    d=copy.deepcopy(base)
    d['admin']['address']['socket_address']['port_value']=admin
    l=d['static_resources']['listeners'][0]; l['address']['socket_address']['port_value']=port
    hcm=l['filter_chains'][0]['filters'][0]['typed_config']
    wasm=hcm['http_filters'][0]['typed_config']['config']
    plugin=json.loads(wasm['configuration']['value'])
    if mode=='b':
        plugin['global_rate_limit']={'cluster':'mcp_edge_ratelimit','timeout_ms':100,'failure_mode':{'free':'open'}}
    wasm['configuration']['value']=json.dumps(plugin)
    if mode=='a':
        hcm['http_filters'].insert(1,{'name':'envoy.filters.http.ratelimit','typed_config':{
          '@type':'type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit',
          'domain':'mcp-edge','timeout':'0.1s','failure_mode_deny':False,
          'rate_limit_service':{'transport_api_version':'V3','grpc_service':{'envoy_grpc':{'cluster_name':'mcp_edge_ratelimit'}}}}})
        hcm['route_config']['virtual_hosts'][0]['routes'][0]['route']['rate_limits']=[{'actions':[
          {'request_headers':{'header_name':'x-mcp-tenant-id','descriptor_key':'tenant'}},
          {'request_headers':{'header_name':'x-mcp-tier','descriptor_key':'tier'}}]}]
    for c in d['static_resources']['clusters']:
        if c['name']=='mcp_edge_ratelimit':
            c['load_assignment']['endpoints'][0]['lb_endpoints'][0]['endpoint']['address']['socket_address']['port_value']=rls_port
    path=f'{M}/{name}.yaml'; yaml.safe_dump(d,open(path,'w'))
    spawn(name,['taskset','-c','0',W+'/.venv/bin/envoy','-c',path,'--concurrency','1','--use-dynamic-base-id','-l','warn'])
    return port
try:
    spawn('upstream',['taskset','-c','1',W+'/.venv/bin/envoy','-c',B+'/envoy-upstream.yaml','--concurrency','1','--use-dynamic-base-id','-l','warn'])
    spawn('redis',['redis-server','--port','16391','--bind','127.0.0.1','--save','','--appendonly','no'])
    wait_port(16391)
    spawn('rls-mem',['taskset','-c','1',SERVICE,'--listen','127.0.0.1:18091','--limits',M+'/limits.yaml','--memory'])
    spawn('rls-redis',['taskset','-c','1',SERVICE,'--listen','127.0.0.1:18092','--limits',M+'/limits.yaml','--redis-url','redis://127.0.0.1:16391/0','--redis-timeout-ms','100'])
    setups={'off':edge('off',18180,18911,'off',18091),
            'b-memory':edge('b-mem',18181,18912,'b',18091),'a-memory':edge('a-mem',18182,18913,'a',18091),
            'b-redis':edge('b-redis',18183,18914,'b',18092),'a-redis':edge('a-redis',18184,18915,'a',18092)}
    for p in [18081,18091,18092]+list(setups.values()): wait_port(p)
    time.sleep(1)
    body='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_projects","arguments":{"limit":20,"include_archived":false}}}'
    def run(port, c, secs):
        e=dict(os.environ, BENCH_BODY=body, BENCH_TOKEN=env['BENCH_CACHED_TOKEN'])
        out=subprocess.run(['taskset','-c','1','wrk','-t1',f'-c{c}',f'-d{secs}s','--timeout','5s','-s',W+'/bench/wrk.lua',f'http://127.0.0.1:{port}/mcp'],env=e,capture_output=True,text=True,cwd=W).stdout
        return json.loads([l for l in out.splitlines() if l.startswith('{')][0])
    # check: a-setups really ask (service metrics not on; count via Envoy ratelimit stats)
    for name,port in setups.items(): run(port,4,1)
    secs=int(os.environ.get('SECS','5')); rounds=int(os.environ.get('ROUNDS','2'))
    res={}
    for r in range(rounds):
        for c in [1,16]:
            for name,port in setups.items():
                x=run(port,c,secs); res.setdefault((name,c),[]).append(x)
                print(name,c,x['p50_us'],x['p99_us'],x['requests'],x['non_2xx'],file=sys.stderr)
    for a,port in [('a-memory',18913),('a-redis',18915)]:
        st=subprocess.run(['curl','-s',f'http://127.0.0.1:{port}/stats?filter=ratelimit'],capture_output=True,text=True).stdout
        print(a, ' '.join(l for l in st.splitlines() if 'ratelimit.ok' in l or 'error' in l or 'failure' in l))
    for b,port in [('b-memory',18912),('b-redis',18914)]:
        st=subprocess.run(['curl','-s',f'http://127.0.0.1:{port}/stats?filter=global_ratelimit'],capture_output=True,text=True).stdout
        print(b, ' '.join(l for l in st.splitlines() if ': 0' not in l))
    print('setup c p50_us p99_us req/s (median of rounds by p50)')
    for (name,c),xs in sorted(res.items(), key=lambda k:(k[0][1],k[0][0])):
        xs=sorted(xs,key=lambda x:x['p50_us']); x=xs[len(xs)//2]
        print(name,c,x['p50_us'],x['p99_us'],round(x['requests']/(x['duration_us']/1e6)),'non2xx',x['non_2xx'])
finally:
    for p in procs: p.terminate()
    for p in procs: p.wait()
